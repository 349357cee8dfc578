"""``python -m recsys.cli``: the ``recsys`` command."""

import sys

from recsys.cli.main import main

sys.exit(main())

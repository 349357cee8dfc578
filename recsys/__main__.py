"""``python -m recsys``: the ``recsys`` command (as ``python -m recsys.cli``)."""

import sys

from recsys.cli.main import main

sys.exit(main())

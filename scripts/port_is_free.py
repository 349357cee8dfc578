"""Exit 0 when a server could listen on 127.0.0.1:PORT now, 1 when another one is listening.

Used by scripts/run.sh before any set-up. SO_REUSEADDR, as Streamlit's own server sets it: the
TIME-WAIT connections that stay for ~30-60 s after a server stops do not make the port look
busy, while a server that is listening still does. Standard library only (runs before the venv).
"""

import socket
import sys


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(0 if port_is_free(int(sys.argv[1])) else 1)

"""Pick free TCP ports on the loopback interface for local services."""

from __future__ import annotations

import socket
import sys

LOOPBACK_HOST = "127.0.0.1"


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that no socket is bound to right now.

    The operating system picks the port. Another process may take it between
    this call and the service binding it, so a caller that starts a service
    retries with a new port when the bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def is_port_free(port: int) -> bool:
    """Return True when a server can listen on ``port`` on 127.0.0.1 right now.

    The probe sets SO_REUSEADDR, as Go and most servers do on POSIX systems,
    so connections of a stopped server that linger in TIME_WAIT do not count
    as taking the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if hasattr(socket, "SO_REUSEADDR") and sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK_HOST, port))
        except OSError:
            return False
    return True

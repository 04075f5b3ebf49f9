"""Listening sockets for the servers plait starts (the events ``Webhook``, the web UI).

Design. A server binds and listens before it announces its URL, so the URL answers at
once (connections wait in the backlog until the server's loop takes them), a port of 0
picks a free one, and a busy port fails with a clear :class:`UsageError` before anything
starts. Whether a host is loopback decides whether a server may listen there without a
token chosen by the user. Standard library only: both the ``events`` and the ``ui``
layers import it.
"""

from __future__ import annotations

import ipaddress
import socket

from plait.errors import UsageError

__all__ = ["is_loopback", "listen"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.x``, ``::1``).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int, *, backlog: int = 128, subject: str = "") -> socket.socket:
    """A TCP socket bound to ``host:port`` (``[::1]`` style IPv6 accepted) and listening.

    Args:
        host: The address to bind.
        port: The port (0: any free one; read it from ``getsockname()``).
        backlog: Connections the kernel queues before the server accepts them.
        subject: Who listens, starting the error message (``"Webhook"``).

    Raises:
        UsageError: When the address cannot be bound (a busy port, an unknown address).
    """
    bare = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: an answer's head and body leave at once (Nagle
    # plus the client's delayed ACK otherwise add ~40 ms to every keep-alive request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((bare, port))
    except OSError as exc:
        sock.close()
        message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise UsageError(f"{subject} {message}" if subject else message) from exc
    sock.listen(backlog)
    return sock

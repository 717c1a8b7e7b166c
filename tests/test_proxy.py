"""The test TCP proxy itself: a cut port refuses, stays ours, and listens again on restore."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.proxy import TcpProxy


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.sendall(client.recv(1024))

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _echo(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"ping")
        return client.recv(1024)


def test_a_cut_port_refuses_is_not_taken_by_others_and_restores() -> None:
    server, target = _echo_server()
    proxy = TcpProxy("127.0.0.1", target).start()
    try:
        assert _echo(proxy.port) == b"ping"
        proxy.cut()
        with pytest.raises(ConnectionRefusedError):
            _echo(proxy.port)
        # while cut, the port is still held: nobody else can bind it (before: a client's
        # ephemeral port could take it, and restore failed with "Address already in use")
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", proxy.port))
        proxy.restore()
        assert _echo(proxy.port) == b"ping"
    finally:
        proxy.close()
        server.close()
    with socket.socket() as other:  # closed: the port is free again
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", proxy.port))

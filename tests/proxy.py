"""A TCP proxy a test can cut and restore, to take a shared server "down" for one client only."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; :meth:`cut` drops every connection (and, unless
    told otherwise, refuses new ones), :meth:`hang` keeps accepting and reading but forwards
    nothing either way (a server that never answers), :meth:`restore` ends either."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._reserved: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()

    def start(self) -> TcpProxy:
        if self._reserved is not None:  # the port kept bound while cut: listen on it again
            listener, self._reserved = self._reserved, None
        else:
            listener = self._bound(self.port)
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self, *, refuse_new: bool = True) -> int:
        """Drop every open connection; how many client connections there were.

        With ``refuse_new`` the port stops listening too (a server that is down);
        without it clients can reconnect at once (a network blip).
        """
        with self._lock:
            listener = self._listener
            if refuse_new:
                self._listener = None
            sockets, self._sockets = self._sockets, set()
        if refuse_new and listener is not None:
            # Keep the port bound (not listening: connecting is refused) until restore.
            # Closed, any process's next outgoing connection could take it as its
            # ephemeral port, and restore would fail with "Address already in use".
            self._reserved = self._bound(self.port)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread; stops listening
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(sockets) // 2

    def hang(self) -> None:
        """From now on nothing is forwarded: bytes are read (so TCP acknowledges them) and held."""
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again; listen again if :meth:`cut` closed the port."""
        self._flowing.set()
        if self._listener is None:
            self.start()

    def close(self) -> None:
        self.cut()
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    @staticmethod
    def _bound(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # both the listener and the reservation hold the port for the moment of the swap
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        return sock

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            if not self._flowing.is_set():
                with self._lock:
                    self._sockets.add(client)  # accepted, never answered
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _swallow(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

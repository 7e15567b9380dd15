"""Use sendall() on a non-blocking socket, which raises BlockingIOError when the buffer fills."""

import selectors
import socket

RECV_BYTES = 65536


class EchoConnection:
    """One client of a selectors echo server: its socket, its unsent bytes and its handlers."""

    def __init__(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        self.selector = selector
        self.sock = sock
        self.outgoing = bytearray()
        self.peer_done = False
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, self)

    def close(self) -> None:
        self.selector.unregister(self.sock)
        self.sock.close()

    def on_readable(self) -> None:
        data = self.sock.recv(RECV_BYTES)
        if not data:
            self.close()
            return
        self.sock.sendall(data)

    def on_writable(self) -> None:
        pass

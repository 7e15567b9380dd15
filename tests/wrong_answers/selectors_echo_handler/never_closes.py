"""Stop reading at end of stream but never close, so the client waits for EOF forever."""

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
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        if not data:
            self.peer_done = True
            self.selector.modify(self.sock, selectors.EVENT_WRITE, self)
            return
        self.outgoing += data
        self.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def on_writable(self) -> None:
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return
        del self.outgoing[:sent]
        if not self.outgoing and not self.peer_done:
            self.selector.modify(self.sock, selectors.EVENT_READ, self)

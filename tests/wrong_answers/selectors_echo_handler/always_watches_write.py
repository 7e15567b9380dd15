"""Keep EVENT_WRITE registered while idle, so the loop calls on_writable() on every select()."""

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
            if self.outgoing:
                self.selector.modify(self.sock, selectors.EVENT_WRITE, self)
            else:
                self.close()
            return
        self.outgoing += data
        self.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def on_writable(self) -> None:
        if self.outgoing:
            sent = self.sock.send(self.outgoing)
            del self.outgoing[:sent]
        if not self.outgoing and self.peer_done:
            self.close()

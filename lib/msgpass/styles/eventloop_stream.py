"""A non-blocking framed stream on the teaching ``EventLoop``: the state a thread used to keep.

A blocking server keeps each connection's progress on a thread's stack: the
thread sits in ``recv`` until a whole frame is there, and in ``sendall`` until
every byte is out. On an event loop no callback may wait, so that progress
becomes explicit state, kept in one object per socket:

- a ``FrameDecoder``, because ``recv`` returns whatever bytes have arrived,
  which may be half a frame or several frames;
- an outgoing buffer, because a non-blocking ``send`` takes only what fits in
  the kernel's send buffer and the rest must wait for write-readiness;
- a flag that records whether the peer has finished sending, so the connection
  closes only after its last reply is out.

``FramedStream`` is that object. Subclasses say what a frame means by
overriding ``_on_frame``, and what happens after the last byte by overriding
``_on_drained`` and ``_on_closed``. ``msgpass.styles.eventloop_echo`` builds
the echo server's connections and the echo client on it.

Left out on purpose: TLS and a limit on the outgoing buffer. The echo server
adds backpressure itself, by pausing reads.
"""

from __future__ import annotations

import logging
import socket

from ..errors import MessagingError, translate_os_error
from ..framing import FrameDecoder, encode_frame
from .eventloop import EventLoop

__all__ = ["RECV_BYTES", "FramedStream"]

log = logging.getLogger(__name__)

RECV_BYTES = 65536  # maximum bytes read by one recv() call


class FramedStream:
    """One non-blocking framed socket on a loop: a decoder for input, a buffer for output.

    ``send`` accepts as many bytes as the kernel's send buffer has room for and
    raises ``BlockingIOError`` when it has none. Whatever it did not take stays
    in ``_outgoing``, and a writer callback sends the rest when the socket
    becomes writable again. The writer is registered only while bytes are
    waiting, because an idle socket is always writable and would wake the loop
    on every step. ``partial_sends`` counts the ``send`` calls that took fewer
    bytes than offered, including those that took none.
    """

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        label: str,
        max_frame_bytes: int,
        connected: bool,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.label = label
        self.closed = False
        self._connected = connected
        self._decoder = FrameDecoder(max_frame_bytes)
        self._max_frame_bytes = max_frame_bytes
        self._outgoing = bytearray()
        self._reading = False
        self._writing = False
        self._close_when_drained = False
        self.bytes_received = 0
        self.bytes_sent = 0
        self.partial_sends = 0

    def write_frame(self, payload: bytes) -> None:
        """Queue ``payload`` as one frame and send as much of it as the kernel takes now."""
        self._outgoing += encode_frame(payload, self._max_frame_bytes)
        self._flush()

    def start_reading(self) -> None:
        """Register the reader callback, so arriving frames reach ``_on_frame``."""
        if not self._reading and not self.closed:
            self.loop.add_reader(self.sock, self._on_readable)
            self._reading = True

    def stop_reading(self) -> None:
        """Unregister the reader callback. The kernel keeps buffering what arrives."""
        if self._reading:
            self.loop.remove_reader(self.sock)
            self._reading = False

    def _flush(self) -> None:
        if not self._connected or self.closed:
            return
        while self._outgoing:
            try:
                sent = self.sock.send(self._outgoing)
            except (BlockingIOError, InterruptedError):
                self.partial_sends += 1
                break
            except OSError as error:
                self._fail(translate_os_error(error, f"send to {self.label}"))
                return
            self.bytes_sent += sent
            if sent < len(self._outgoing):
                self.partial_sends += 1
            del self._outgoing[:sent]
        if self._outgoing and not self._writing:
            self.loop.add_writer(self.sock, self._flush)
            self._writing = True
        elif not self._outgoing:
            if self._writing:
                self.loop.remove_writer(self.sock)
                self._writing = False
            self._on_drained()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._fail(translate_os_error(error, f"receive from {self.label}"))
            return
        if not data:
            self._on_end_of_stream()
            return
        self.bytes_received += len(data)
        try:
            frames = self._decoder.feed(data)
        except MessagingError as error:
            self._fail(error)
            return
        for payload in frames:
            if self.closed:
                break
            self._on_frame(payload)

    def _on_end_of_stream(self) -> None:
        self.stop_reading()
        try:
            self._decoder.close()
        except MessagingError as error:
            self._fail(error)
            return
        # The peer has finished sending. Send the replies already queued, then close.
        self._close_when_drained = True
        if not self._outgoing:
            self.close()

    def _on_drained(self) -> None:
        if self._close_when_drained:
            self.close()

    def _fail(self, error: MessagingError) -> None:
        log.warning("closing %s after an error: %s", self.label, error)
        self._outgoing.clear()
        self.close(error)

    def close(self, error: MessagingError | None = None) -> None:
        """Close the socket, dropping unsent bytes, and report ``error`` to ``_on_closed``."""
        if self.closed:
            return
        self.closed = True
        self.stop_reading()
        if self._writing:
            self.loop.remove_writer(self.sock)
            self._writing = False
        self.sock.close()
        self._on_closed(error)

    def _on_frame(self, payload: bytes) -> None:
        raise NotImplementedError

    def _on_closed(self, error: MessagingError | None) -> None:
        pass

"""An embedded MQTT broker and paho-mqtt client helpers for the IoT lab.

MQTT is the publish/subscribe protocol of small devices: a client keeps one
TCP connection to a broker, publishes to topics such as ``plant/7/temp`` and
subscribes to topic filters. Each message carries a quality of service (QoS)
that holds for one hop, client to broker or broker to client:

- QoS 0, at most once: one PUBLISH, never acknowledged or retried.
- QoS 1, at least once: PUBLISH is retried until a PUBACK arrives, so the
  receiver may get duplicates.
- QoS 2, exactly once: PUBLISH, PUBREC, PUBREL, PUBCOMP. The receiver keeps
  the packet id between PUBREC and PUBREL, so it passes a message on once.

``MqttBroker`` runs an ``amqtt`` 0.12 broker (MQTT 3.1.1) on ``127.0.0.1``
and a free port, in its own thread with its own asyncio loop, so a notebook
can start and stop it like any other server. ``connect_client``,
``publish_and_wait`` and ``MessageCollector`` wrap paho-mqtt 2.2 with a
timeout on every wait. ``drop_connection`` closes a client's socket without
sending DISCONNECT, which is how a broker sees a device that lost power.

The second half is a model of one MQTT hop for ``msgpass.sim``: ``SimDevice``
publishes readings at QoS 0 or 1 over a lossy simulated link, with packet ids
that are reused once acknowledged, and ``SimSubscriber`` receives them. It
lets a lab measure delivery ratio against loss rate in milliseconds of
simulated time, and it is what the ``qos1-dedup`` exercise runs on.

Left out on purpose: TLS, passwords (the broker accepts any user name), MQTT 5
properties and websockets.
"""

from __future__ import annotations

__all__ = [
    "MqttBroker",
    "MessageCollector",
    "ReceivedMessage",
    "connect_client",
    "publish_and_wait",
    "drop_connection",
    "stop_client",
    "DEFAULT_TIMEOUT_S",
    "Publish",
    "Puback",
    "SimDevice",
    "SimSubscriber",
    "reading_payload",
    "parse_reading",
]

import asyncio
import contextlib
import json
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from amqtt.broker import Broker  # type: ignore[import-untyped]
from paho.mqtt.enums import CallbackAPIVersion

from .errors import MessagingTimeout, ProtocolError
from .node import Node

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0  # seconds any start, stop, connect or publish may take on loopback
KEEPALIVE_S = 60  # MQTT keep-alive sent in CONNECT; a dropped client is noticed by EOF, not by this

# CONNECT for MQTT 3.1.1 with clean session, keep-alive 10 s, client id and user
# name "ready": fixed header 0x10 and remaining length 24, protocol name "MQTT",
# level 4, flags 0x82 (user name, clean session), keep-alive, then the
# length-prefixed client id and user name.
_PROBE_CONNECT = bytes([0x10, 24, 0, 4]) + b"MQTT" + bytes([4, 0x82, 0, 10]) + b"\x00\x05ready" * 2
_CONNACK_ACCEPTED = bytes([0x20, 2, 0, 0])  # CONNACK, no session present, return code 0
_DISCONNECT = bytes([0xE0, 0])


class MqttBroker:
    """An amqtt broker on 127.0.0.1 in a background thread: start it, read ``port``, stop it.

    ``start`` returns once a probe client got a CONNACK, so the broker accepts
    clients. ``stop`` shuts the broker down, which closes every client
    connection and the listening socket, and joins the thread::

        with MqttBroker() as broker:
            client = connect_client(broker.port, "sensor-1")
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.host = host
        self.requested_port = port
        self.timeout_s = timeout_s
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on, chosen by the OS when 0 was requested."""
        if self._port is None:
            raise ProtocolError("the MQTT broker is not running: call start() first")
        return self._port

    def start(self) -> MqttBroker:
        """Start the broker thread; return once the broker answered a CONNECT with CONNACK.

        Raises ``MessagingTimeout`` if it is not ready within ``timeout_s``.
        """
        if self._thread is not None:
            raise ProtocolError("the MQTT broker is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="msgpass-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout_s):
            self.stop()
            raise MessagingTimeout(f"the MQTT broker did not start within {self.timeout_s} s")
        if self._error is not None:
            error = self._error
            self.stop()
            raise ProtocolError(f"the MQTT broker failed to start: {error}") from error
        try:
            self._probe()
        except BaseException:
            self.stop()
            raise
        log.info("MQTT broker listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Shut the broker down, closing every connection, and join its thread. Idempotent."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            # RuntimeError: the loop closed between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(self.timeout_s)
        if thread.is_alive():
            log.error("MQTT broker thread did not stop within %s s", self.timeout_s)
        self._thread = None
        self._port = None
        log.info("MQTT broker stopped")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start(); the thread must end cleanly
            self._error = error
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.requested_port}"}},
            # Only the authentication plugin: no $SYS publisher, no packet logger.
            # amqtt 0.12 drops the session of an anonymous client when it
            # disconnects, even with clean session off, so clients must send a
            # user name. NOTE: any user name is accepted and no password is checked.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}
            },
        }
        broker = Broker(config, loop=asyncio.get_running_loop())
        await broker.start()
        try:
            server = broker._servers["default"].instance  # amqtt 0.12 keeps the asyncio.Server here
            sockets: Any = server.sockets
            self._port = int(sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await broker.shutdown()

    def _probe(self) -> None:
        """Connect with a raw MQTT CONNECT and expect CONNACK, then DISCONNECT."""
        with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
            sock.sendall(_PROBE_CONNECT)
            reply = b""
            while len(reply) < len(_CONNACK_ACCEPTED):
                chunk = sock.recv(len(_CONNACK_ACCEPTED) - len(reply))
                if not chunk:
                    break
                reply += chunk
            if reply != _CONNACK_ACCEPTED:
                raise ProtocolError(f"expected CONNACK {_CONNACK_ACCEPTED!r}, got {reply!r}")
            sock.sendall(_DISCONNECT)

    def __enter__(self) -> MqttBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"on {self.host}:{self._port}" if self._port is not None else "stopped"
        return f"<MqttBroker {state}>"


@dataclass(frozen=True)
class ReceivedMessage:
    """One application message as a subscriber's ``on_message`` saw it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


class MessageCollector:
    """Collect the messages a paho client receives, and wait for them with a deadline.

    Pass ``collector.on_message`` as the client's ``on_message`` callback;
    ``connect_client(..., collector=collector)`` does that.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[ReceivedMessage] = queue.Queue()
        self.received: list[ReceivedMessage] = []

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Queue one received message; paho calls this on the client's network thread."""
        self._queue.put(
            ReceivedMessage(
                topic=message.topic,
                payload=bytes(message.payload),
                qos=int(message.qos),
                retain=bool(message.retain),
                mid=int(message.mid),
            )
        )

    def wait_for(self, count: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[ReceivedMessage]:
        """Wait until ``count`` messages in total arrived; return all of them.

        Returns early with fewer at the deadline, so a lost message shows up
        as a short list instead of a hang.
        """
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.received.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return list(self.received)

    def drain(self, quiet_s: float = 0.2) -> list[ReceivedMessage]:
        """Take whatever arrives until ``quiet_s`` seconds pass with nothing new; return all."""
        while True:
            try:
                self.received.append(self._queue.get(timeout=quiet_s))
            except queue.Empty:
                return list(self.received)

    def __repr__(self) -> str:
        return f"<MessageCollector {len(self.received)} received, {self._queue.qsize()} waiting>"


def connect_client(
    port: int,
    client_id: str,
    *,
    host: str = "127.0.0.1",
    clean_session: bool = True,
    will: tuple[str, bytes, int] | None = None,
    collector: MessageCollector | None = None,
    subscribe: list[tuple[str, int]] | None = None,
    packet_log: list[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> mqtt.Client:
    """Connect a paho MQTT 3.1.1 client, start its network thread, wait for CONNACK.

    The user name is the client id, because the broker accepts any user
    name and keeps the sessions only of clients that send one.
    ``will`` is (topic, payload, qos) of the last-will message the broker
    publishes if this connection drops without DISCONNECT. ``subscribe``
    lists (topic filter, qos) pairs, subscribed after the CONNACK and
    waited for (SUBACK). ``packet_log`` receives paho's log lines, which
    name every packet sent and received (``Sending PUBLISH (d0, q1, ...)``).
    Raises ``MessagingTimeout`` if the broker sends no CONNACK or SUBACK in time. Stop
    the client with ``stop_client``.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )
    connected = threading.Event()
    subscribed = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        connected.set()

    def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.username_pw_set(client_id)
    if collector is not None:
        client.on_message = collector.on_message
    if packet_log is not None:

        def on_log(client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
            packet_log.append(f"{client_id}: {text}")

        client.on_log = on_log
    if will is not None:
        client.will_set(will[0], will[1], qos=will[2])

    client.connect(host, port, keepalive=KEEPALIVE_S)
    client.loop_start()
    if not connected.wait(timeout_s):
        stop_client(client)
        raise MessagingTimeout(f"client {client_id}: no CONNACK within {timeout_s} s")
    for topic_filter, qos in subscribe or []:
        subscribed.clear()
        client.subscribe(topic_filter, qos)
        if not subscribed.wait(timeout_s):
            stop_client(client)
            raise MessagingTimeout(f"client {client_id}: no SUBACK for {topic_filter!r}")
    return client


def publish_and_wait(
    client: mqtt.Client,
    topic: str,
    payload: bytes,
    qos: int,
    *,
    retain: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> int:
    """Publish and wait until paho finished the QoS handshake; return the message id.

    For QoS 0 that means the packet was written to the socket, for QoS 1 that
    PUBACK arrived, for QoS 2 that PUBCOMP arrived. Raises
    ``MessagingTimeout`` otherwise.
    """
    info = client.publish(topic, payload, qos=qos, retain=retain)
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError) as error:  # paho: not connected, or the queue is full
        raise ProtocolError(f"publish to {topic!r} failed: {error}") from error
    if not info.is_published():
        raise MessagingTimeout(
            f"publish to {topic!r} (qos {qos}) not completed within {timeout_s} s"
        )
    return int(info.mid)


def stop_client(client: mqtt.Client, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Send DISCONNECT if still connected, stop the network thread, close every socket."""
    if client.is_connected():
        client.disconnect()
    client.loop_stop()
    _close_sockets(client)


def drop_connection(client: mqtt.Client) -> None:
    """Kill a client's connection without DISCONNECT, as a power cut or a lost link does.

    The network thread is stopped first, so paho does not reconnect. The
    broker then reads end of file, which makes it publish the client's will.
    """
    client.loop_stop()
    sock = client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already reset by the peer
            sock.shutdown(socket.SHUT_RDWR)
    _close_sockets(client)


def _close_sockets(client: mqtt.Client) -> None:
    # paho 2.2 also keeps a loopback TCP socket pair per client to wake its
    # network loop, and closes it only in __del__ or in this private method.
    # NOTE: a private paho method; recheck it when upgrading paho-mqtt.
    client._reset_sockets()


# ---------------------------------------------------------------------------
# One MQTT hop on the simulated network
# ---------------------------------------------------------------------------

SIM_INTERVAL_S = 0.1  # simulated seconds between two readings of a device
SIM_RETRY_S = 0.05  # simulated seconds a QoS 1 device waits for PUBACK before resending
SIM_MAX_ATTEMPTS = 10  # sends of one QoS 1 message before the device gives up on it
SIM_PACKET_IDS = 8  # packet ids 1..8 in use; MQTT allows 1..65535, fewer makes reuse visible


@dataclass(frozen=True)
class Publish:
    """An MQTT PUBLISH on the simulated link.

    ``dup`` is true on a resend of the same packet. ``payload`` is a JSON
    reading made by ``reading_payload``.
    """

    packet_id: int
    qos: int
    dup: bool
    payload: bytes


@dataclass(frozen=True)
class Puback:
    """The acknowledgement of a QoS 1 PUBLISH, naming its packet id."""

    packet_id: int


def reading_payload(device: str, seq: int, value: float) -> bytes:
    """Encode one sensor reading as the JSON payload the simulated devices publish."""
    return json.dumps({"device": device, "seq": seq, "value": value}).encode()


def parse_reading(payload: bytes) -> dict[str, Any]:
    """Decode a payload made by ``reading_payload`` into a dict."""
    reading: dict[str, Any] = json.loads(payload)
    return reading


class SimDevice(Node):
    """A sensor that publishes ``count`` readings to ``broker`` every ``SIM_INTERVAL_S``.

    At QoS 0 each reading is sent once. At QoS 1 the device resends it with
    ``dup`` true every ``SIM_RETRY_S`` until a PUBACK with its packet id
    arrives, and gives up after ``SIM_MAX_ATTEMPTS`` sends. A packet id is
    free again once its PUBACK arrived, as in MQTT, so the same id soon names
    a different reading. When every id is in flight the next reading waits.
    """

    def __init__(self, node_id: str, *, broker: str, qos: int, count: int) -> None:
        super().__init__(node_id)
        if qos not in (0, 1):
            raise ValueError(f"invalid qos={qos}: the simulated device supports 0 and 1")
        self.broker = broker
        self.qos = qos
        self.count = count
        self.next_seq = 0
        self.in_flight: dict[int, tuple[Publish, int]] = {}  # packet id -> (packet, sends)
        self.acked: set[int] = set()  # sequence numbers whose PUBACK arrived
        self.gave_up: list[int] = []
        self.sends = 0

    def on_start(self) -> None:
        self.set_timer(0.0, "reading")

    def on_timer_reading(self) -> None:
        if self.next_seq >= self.count:
            return
        packet_id = self._free_packet_id()
        if packet_id is None:  # every id is in flight: try again at the next tick
            self.set_timer(SIM_INTERVAL_S, "reading")
            return
        seq = self.next_seq
        self.next_seq += 1
        value = round(20.0 + self.random.random() * 5.0, 2)
        packet = Publish(packet_id, self.qos, False, reading_payload(self.node_id, seq, value))
        self._send(packet, sends=0)
        self.set_timer(SIM_INTERVAL_S, "reading")

    def on_timer(self, name: str) -> None:
        # Resend timers are named "retry-<packet id>".
        packet_id = int(name.removeprefix("retry-"))
        entry = self.in_flight.get(packet_id)
        if entry is None:
            return
        packet, sends = entry
        if sends >= SIM_MAX_ATTEMPTS:
            del self.in_flight[packet_id]
            self.gave_up.append(int(parse_reading(packet.payload)["seq"]))
            return
        self._send(Publish(packet.packet_id, packet.qos, True, packet.payload), sends=sends)

    def on_Puback(self, sender: str, message: Puback) -> None:
        entry = self.in_flight.pop(message.packet_id, None)
        if entry is not None:
            self.acked.add(int(parse_reading(entry[0].payload)["seq"]))

    def _send(self, packet: Publish, sends: int) -> None:
        self.sends += 1
        self.send(self.broker, packet)
        if packet.qos == 1:
            self.in_flight[packet.packet_id] = (packet, sends + 1)
            self.set_timer(SIM_RETRY_S, f"retry-{packet.packet_id}")

    def _free_packet_id(self) -> int | None:
        for offset in range(SIM_PACKET_IDS):
            packet_id = (self.next_seq + offset) % SIM_PACKET_IDS + 1
            if packet_id not in self.in_flight:
                return packet_id
        return None


class SimSubscriber(Node):
    """The receiving end of the hop: it passes readings on and acknowledges QoS 1.

    ``accept(reading)`` is the application's side: every call appends to
    ``readings``. This base class accepts every copy it receives, so QoS 1
    duplicates show up twice.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.readings: list[dict[str, Any]] = []
        self.packets = 0

    def accept(self, reading: dict[str, Any]) -> None:
        """Pass one reading to the application."""
        self.readings.append(reading)

    def on_Publish(self, sender: str, message: Publish) -> None:
        self.packets += 1
        self.accept(parse_reading(message.payload))
        if message.qos == 1:
            self.send(sender, Puback(message.packet_id))

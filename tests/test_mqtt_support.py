"""Tests of the embedded MQTT broker and the paho-mqtt helpers, on loopback."""

from __future__ import annotations

import socket
import threading

import psutil
import pytest

from msgpass.errors import ProtocolError
from msgpass.mqtt_support import (
    MessageCollector,
    MqttBroker,
    connect_client,
    drop_connection,
    publish_and_wait,
    stop_client,
)


@pytest.fixture
def broker():
    with MqttBroker() as running:
        yield running


def _broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "msgpass-mqtt-broker"]


def test_broker_reports_port_and_stops(broker: MqttBroker) -> None:
    assert broker.port > 0
    assert "127.0.0.1" in repr(broker)
    port = broker.port
    broker.stop()
    assert _broker_threads() == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()


def test_port_before_start_raises() -> None:
    with pytest.raises(ProtocolError, match="not running"):
        _ = MqttBroker().port


def test_stop_twice_is_harmless() -> None:
    broker = MqttBroker().start()
    broker.stop()
    broker.stop()
    assert _broker_threads() == []


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_reaches_subscriber(broker: MqttBroker, qos: int) -> None:
    collector = MessageCollector()
    subscriber = connect_client(
        broker.port, "sub", collector=collector, subscribe=[("sensors/#", qos)]
    )
    publisher = connect_client(broker.port, "pub")
    try:
        for number in range(5):
            publish_and_wait(publisher, "sensors/t", f"{number}".encode(), qos)
        received = collector.wait_for(5, timeout_s=5.0)
    finally:
        stop_client(publisher)
        stop_client(subscriber)
    assert [m.payload for m in received] == [b"0", b"1", b"2", b"3", b"4"]


def test_packet_log_shows_qos2_handshake(broker: MqttBroker) -> None:
    packets: list[str] = []
    publisher = connect_client(broker.port, "pub", packet_log=packets)
    try:
        publish_and_wait(publisher, "t", b"x", 2)
    finally:
        stop_client(publisher)
    text = "\n".join(packets)
    for packet in ("Sending PUBLISH", "Received PUBREC", "Sending PUBREL", "Received PUBCOMP"):
        assert packet in text


def test_retained_message_reaches_late_subscriber(broker: MqttBroker) -> None:
    publisher = connect_client(broker.port, "pub")
    publish_and_wait(publisher, "config/rate", b"10", 1, retain=True)
    stop_client(publisher)
    collector = MessageCollector()
    late = connect_client(broker.port, "late", collector=collector, subscribe=[("config/#", 1)])
    try:
        received = collector.wait_for(1, timeout_s=5.0)
    finally:
        stop_client(late)
    assert [(m.payload, m.retain) for m in received] == [(b"10", True)]


def test_dropped_connection_publishes_will(broker: MqttBroker) -> None:
    collector = MessageCollector()
    watcher = connect_client(
        broker.port, "watcher", collector=collector, subscribe=[("status/#", 1)]
    )
    device = connect_client(broker.port, "device", will=("status/device", b"offline", 1))
    try:
        drop_connection(device)
        received = collector.wait_for(1, timeout_s=5.0)
    finally:
        stop_client(watcher)
    assert [(m.topic, m.payload) for m in received] == [("status/device", b"offline")]


def test_clean_disconnect_sends_no_will(broker: MqttBroker) -> None:
    collector = MessageCollector()
    watcher = connect_client(
        broker.port, "watcher", collector=collector, subscribe=[("status/#", 1)]
    )
    device = connect_client(broker.port, "device", will=("status/device", b"offline", 1))
    stop_client(device)
    received = collector.drain(quiet_s=0.3)
    stop_client(watcher)
    assert received == []


def test_persistent_session_queues_qos1(broker: MqttBroker) -> None:
    offline = connect_client(broker.port, "logger", clean_session=False, subscribe=[("data/#", 1)])
    stop_client(offline)
    publisher = connect_client(broker.port, "pub")
    for number in range(3):
        publish_and_wait(publisher, "data/x", f"{number}".encode(), 1)
    stop_client(publisher)
    collector = MessageCollector()
    back = connect_client(broker.port, "logger", clean_session=False, collector=collector)
    try:
        received = collector.wait_for(3, timeout_s=5.0)
    finally:
        stop_client(back)
    assert sorted(m.payload for m in received) == [b"0", b"1", b"2"]


def _inet_connections() -> set[tuple[object, object]]:
    return {(c.laddr, c.raddr) for c in psutil.Process().net_connections(kind="inet")}


def test_stopped_clients_leave_no_sockets(broker: MqttBroker) -> None:
    before = _inet_connections()
    client = connect_client(broker.port, "short-lived")
    dropped = connect_client(broker.port, "dropped")
    stop_client(client)
    drop_connection(dropped)
    broker.stop()
    assert _inet_connections() - before == set()

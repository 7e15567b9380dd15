"""Private Redis and RabbitMQ servers start, respond, stop and leave nothing behind.

These tests run the real server programs. Where one is not installed, its
tests are skipped, unless the environment variable CI is ``true``: a build
machine is expected to have both, so there a missing program fails.
"""

from __future__ import annotations

import os
import pathlib
import socket
from collections.abc import Iterator

import psutil
import pytest

from msgpass.errors import MessagingError, ServiceProgramNotExecutable, ServiceUnavailable
from msgpass.services import (
    PrivateServer,
    RedisServer,
    find_program,
    require_service,
    service_available,
)
from msgpass.services_rabbitmq import RabbitMQServer


def _skip_unless_installed(service: str) -> None:
    if not service_available(service) and os.environ.get("CI") != "true":
        pytest.skip(f"{service} is not installed")


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _assert_stopped_cleanly(server: PrivateServer, children_before: set[int]) -> None:
    assert server.state == "stopped"
    assert server.directory is None
    assert not _listening(server.port), f"port {server.port} still accepts connections"
    assert _children() == children_before, "a child process outlived stop()"


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CI", raising=False)
    yield


def test_redis_start_ping_stop() -> None:
    _skip_unless_installed("redis")
    before = _children()
    with RedisServer() as server:
        directory = server.directory
        assert directory is not None and directory.is_dir()
        assert server.state == "running"
        assert server.url == f"redis://127.0.0.1:{server.port}"
        assert "running" in repr(server)
        assert server.stats()["startup_s"] is not None
        with socket.create_connection((server.host, server.port), timeout=5.0) as client:
            client.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
            assert client.recv(16) == b"+OK\r\n"
    _assert_stopped_cleanly(server, before)
    assert not directory.exists()
    assert server.stats()["killed"] is False


def test_redis_stop_twice_and_restart_rejected() -> None:
    _skip_unless_installed("redis")
    server = RedisServer()
    server.start()
    server.start()  # a second start while running does nothing
    server.stop()
    server.stop()
    with pytest.raises(MessagingError, match="was stopped"):
        server.start()


def test_redis_stop_without_start() -> None:
    server = RedisServer()
    server.stop()
    assert server.state == "stopped"


def test_redis_server_exit_during_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program that exits at once is reported with its status and output."""
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", "/bin/false")
    before = _children()
    server = RedisServer()
    with pytest.raises(MessagingError, match="exited with status 1 during startup"):
        server.start()
    assert server.state == "stopped"
    assert server.directory is None
    assert _children() == before


def test_redis_missing_program_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", "/nonexistent/redis-server")
    assert not service_available("redis")
    with pytest.raises(ServiceUnavailable) as raised:
        RedisServer().start()
    message = str(raised.value)
    assert "/nonexistent/redis-server not found" in message
    assert "apt-get install redis-server" in message
    assert raised.value.service == "Redis"


def test_rabbitmq_missing_program_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGPASS_RABBITMQ_SERVER", "/nonexistent")
    with pytest.raises(ServiceUnavailable, match="apt-get install rabbitmq-server"):
        find_program("rabbitmq")
    before = _children()
    with pytest.raises(ServiceUnavailable):
        RabbitMQServer().start()
    assert _children() == before


def test_require_service_missing_prints_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_ci: None
) -> None:
    monkeypatch.setenv("MSGPASS_RABBITMQ_SERVER", "/nonexistent")
    assert require_service("rabbitmq") is False
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install rabbitmq-server" in lines[0]
    assert "skipped" in lines[0]


def test_require_service_missing_raises_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", "/nonexistent")
    with pytest.raises(ServiceUnavailable, match="apt-get install redis-server"):
        require_service("redis")


def test_require_service_other_ci_value_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "false")
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", "/nonexistent")
    assert require_service("redis") is False
    assert "not found" in capsys.readouterr().out


def test_require_service_installed_prints_nothing(
    capsys: pytest.CaptureFixture[str], no_ci: None
) -> None:
    _skip_unless_installed("redis")
    assert require_service("redis") is True
    assert capsys.readouterr().out == ""


def test_unknown_service_rejected() -> None:
    with pytest.raises(ValueError, match="unknown service 'kafka'"):
        service_available("kafka")


def test_start_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="start_timeout_s"):
        RedisServer(start_timeout_s=0)


@pytest.mark.slow
def test_rabbitmq_start_amqp_stop() -> None:
    _skip_unless_installed("rabbitmq")
    pika = pytest.importorskip("pika")
    before = _children()
    with RabbitMQServer() as server:
        assert server.url == f"amqp://127.0.0.1:{server.port}"
        parameters = pika.ConnectionParameters(
            server.host,
            server.port,
            socket_timeout=5,
            blocked_connection_timeout=5,
            connection_attempts=1,
        )
        connection = pika.BlockingConnection(parameters)
        try:
            channel = connection.channel()
            channel.queue_declare("probe")
            channel.basic_publish("", "probe", b"hello")
            method, _properties, body = channel.basic_get("probe", auto_ack=True)
            assert body == b"hello"
        finally:
            connection.close()
        assert "probe" in server.rabbitmqctl("list_queues", "name")
        epmd_port, dist_port = server.epmd_port, server.dist_port
        assert _listening(epmd_port), "the private epmd is not listening"
    _assert_stopped_cleanly(server, before)
    assert not _listening(epmd_port), "the private epmd outlived stop()"
    assert not _listening(dist_port)
    assert server.stats()["killed"] is False, "rabbitmqctl stop did not stop the node"


def test_redis_program_is_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", str(tmp_path))
    assert not service_available("redis")
    with pytest.raises(ServiceProgramNotExecutable) as raised:
        find_program("redis")
    message = str(raised.value)
    assert f"{tmp_path} is a directory, not an executable file" in message
    assert "not found" not in message
    assert isinstance(raised.value, ServiceUnavailable)


def test_redis_program_not_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    program = tmp_path / "redis-server"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o644)
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", str(program))
    with pytest.raises(
        ServiceProgramNotExecutable, match=r"is not executable \(set its execute permission"
    ):
        find_program("redis")


def test_redis_silent_exit_during_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program that exits at once without output is reported as printing nothing."""
    monkeypatch.setenv("MSGPASS_REDIS_SERVER", "/bin/true")
    server = RedisServer()
    with pytest.raises(MessagingError) as raised:
        server.start()
    message = str(raised.value)
    assert "(/bin/true) exited with status 0 during startup" in message
    assert message.endswith("and it printed nothing")
    assert "output ends with" not in message

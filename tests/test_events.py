"""EventEmitter: ordering, once, off, snapshots, the "error" event and the leak warning."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from msgpass.styles.events import EventEmitter


def test_listeners_run_in_order_with_bound_args() -> None:
    emitter = EventEmitter(name="t")
    calls: list[tuple[Any, ...]] = []
    emitter.on("message", lambda *args: calls.append(("first", *args)), "bound")
    emitter.on("message", lambda *args: calls.append(("second", *args)))

    ran = emitter.emit("message", 1, 2)

    assert ran is True
    assert calls == [("first", "bound", 1, 2), ("second", 1, 2)]


def test_emit_without_listeners_returns_false() -> None:
    emitter = EventEmitter()
    assert emitter.emit("nothing") is False
    assert emitter.stats()["emitted"] == 1


def test_on_returns_emitter_for_chaining() -> None:
    emitter = EventEmitter()
    assert emitter.on("a", print).once("b", print) is emitter
    assert emitter.event_names() == ["a", "b"]


def test_once_runs_only_once() -> None:
    emitter = EventEmitter()
    calls: list[int] = []
    emitter.once("tick", calls.append)

    assert emitter.emit("tick", 1) is True
    assert emitter.emit("tick", 2) is False
    assert calls == [1]
    assert emitter.listener_count("tick") == 0


def test_once_not_rerun_by_reentrant_emit() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        if len(calls) == 1:
            emitter.emit("tick")  # re-enters while the outer emit still iterates over its snapshot

    emitter.on("tick", first)
    emitter.once("tick", lambda: calls.append("once"))

    emitter.emit("tick")

    assert calls.count("once") == 1
    assert calls.count("first") == 2


def test_off_removes_once_by_original_function() -> None:
    emitter = EventEmitter()
    calls: list[int] = []
    emitter.once("tick", calls.append)

    assert emitter.off("tick", calls.append) is True
    assert emitter.emit("tick", 1) is False
    assert calls == []


def test_off_removes_latest_registration_only() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def listener(tag: str) -> None:
        calls.append(tag)

    emitter.on("e", listener, "a")
    emitter.on("e", listener, "b")

    assert emitter.off("e", listener) is True
    emitter.emit("e")
    assert calls == ["a"]
    assert emitter.off("e", listener) is True
    assert emitter.off("e", listener) is False
    assert emitter.event_names() == []


def test_off_during_emit_does_not_affect_it() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def second() -> None:
        calls.append("second")

    def first() -> None:
        calls.append("first")
        emitter.off("e", second)

    emitter.on("e", first)
    emitter.on("e", second)

    emitter.emit("e")
    assert calls == ["first", "second"]

    emitter.emit("e")
    assert calls == ["first", "second", "first"]


def test_on_during_emit_waits_for_next_emit() -> None:
    emitter = EventEmitter()
    calls: list[str] = []

    def adder() -> None:
        calls.append("adder")
        emitter.on("e", lambda: calls.append("added"))

    emitter.once("e", adder)

    emitter.emit("e")
    assert calls == ["adder"]

    emitter.emit("e")
    assert calls == ["adder", "added"]


def test_listeners_and_count_report_registrations() -> None:
    emitter = EventEmitter()
    emitter.on("e", print)
    emitter.once("e", repr)
    emitter.on("e", print)

    assert emitter.listeners("e") == [print, repr, print]
    assert emitter.listener_count("e") == 3
    assert emitter.listener_count("other") == 0


def test_error_without_listener_raises_it() -> None:
    emitter = EventEmitter()
    error = ValueError("boom")

    with pytest.raises(ValueError, match="boom") as caught:
        emitter.emit("error", error)
    assert caught.value is error


def test_error_without_listener_non_exception_raises() -> None:
    emitter = EventEmitter()
    with pytest.raises(RuntimeError, match="unhandled 'error' event"):
        emitter.emit("error", "just a string")


def test_error_with_listener_is_delivered() -> None:
    emitter = EventEmitter()
    received: list[BaseException] = []
    emitter.on("error", received.append)
    error = ValueError("boom")

    assert emitter.emit("error", error) is True
    assert received == [error]


def test_listener_error_routed_to_error_event() -> None:
    emitter = EventEmitter()
    received: list[BaseException] = []
    later: list[str] = []
    emitter.on("error", received.append)

    def failing() -> None:
        raise KeyError("missing")

    emitter.on("data", failing)
    emitter.on("data", lambda: later.append("ran"))

    assert emitter.emit("data") is True

    assert len(received) == 1
    assert isinstance(received[0], KeyError)
    assert "of event 'data'" in received[0].__notes__[0]
    assert later == ["ran"], "a failing listener must not skip the others"
    assert emitter.stats()["listener_errors"] == 1


def test_listener_error_logged_without_error_listener(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter(name="conn-7")

    def failing() -> None:
        raise KeyError("missing")

    emitter.on("data", failing)

    with caplog.at_level(logging.ERROR, logger="msgpass.styles.events"):
        assert emitter.emit("data") is True

    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert "'data'" in record.getMessage()
    assert f"#{emitter.id}" in record.getMessage()
    assert "conn-7" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)


def test_failing_error_listener_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter()

    def failing_error_listener(error: BaseException) -> None:
        raise RuntimeError("handler broke") from error

    def failing() -> None:
        raise KeyError("missing")

    emitter.on("error", failing_error_listener)
    emitter.on("data", failing)

    with caplog.at_level(logging.ERROR, logger="msgpass.styles.events"):
        emitter.emit("data")

    assert len(caplog.records) == 1
    assert "'error'" in caplog.records[0].getMessage()
    assert emitter.stats()["listener_errors"] == 2


def test_leak_warning_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter(max_listeners=2)

    with caplog.at_level(logging.WARNING, logger="msgpass.styles.events"):
        emitter.on("e", print)
        emitter.on("e", print)
        assert caplog.records == []
        emitter.on("e", print)
        emitter.on("e", print)
        emitter.on("other", print)

    assert len(caplog.records) == 1
    assert "possible listener leak" in caplog.records[0].getMessage()
    assert "3 listeners" in caplog.records[0].getMessage()


def test_leak_warning_disabled_by_zero(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter(max_listeners=0)
    with caplog.at_level(logging.WARNING, logger="msgpass.styles.events"):
        for _ in range(50):
            emitter.on("e", print)
    assert caplog.records == []


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="max_listeners"):
        EventEmitter(max_listeners=-1)
    with pytest.raises(TypeError, match="callable"):
        EventEmitter().on("e", "not a function")  # type: ignore[arg-type]


def test_remove_all_listeners() -> None:
    emitter = EventEmitter()
    emitter.on("a", print)
    emitter.on("b", print)

    emitter.remove_all_listeners("a")
    assert emitter.event_names() == ["b"]

    emitter.remove_all_listeners()
    assert emitter.event_names() == []


def test_once_fires_once_across_threads() -> None:
    emitter = EventEmitter()
    calls: list[int] = []
    emitter.once("go", calls.append)
    barrier = threading.Barrier(8)

    def emit_after_barrier(index: int) -> None:
        barrier.wait(timeout=10)
        emitter.emit("go", index)

    threads = [threading.Thread(target=emit_after_barrier, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(calls) == 1


def test_repr_shows_counts() -> None:
    emitter = EventEmitter(name="conn")
    emitter.on("a", print)
    emitter.on("a", print)
    emitter.on("b", print)

    text = repr(emitter)

    assert "'conn'" in text
    assert "2 events" in text
    assert "3 listeners" in text

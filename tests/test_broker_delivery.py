"""Per-partition at-least-once bookkeeping of msgpass.broker.delivery, with explicit times."""

from __future__ import annotations

import pytest

from msgpass.broker.delivery import PartitionDelivery


def _state(max_deliveries: int = 3) -> PartitionDelivery:
    return PartitionDelivery(0, ack_timeout_s=1.0, max_deliveries=max_deliveries)


def test_committed_advances_over_contiguous_prefix():
    state = _state()
    assert [h.offset for h in state.take(5, 10, "m", now_s=0)] == [0, 1, 2, 3, 4]
    assert state.ack(1) is False
    assert state.ack(3) is False
    assert state.committed == 0
    assert state.ack(0) is True
    assert state.committed == 2
    assert state.ack(2) is True
    assert state.committed == 4
    assert state.ack(2) is False  # a duplicate ack changes nothing
    assert state.ack(4) is True
    assert state.committed == 5


def test_ack_of_undelivered_offset_rejected():
    state = _state()
    state.take(5, 2, "m", now_s=0)
    with pytest.raises(ValueError, match="never delivered"):
        state.ack(2)


def test_timeout_redelivers_with_count():
    state = _state()
    state.take(2, 10, "m", now_s=0)
    state.ack(1)
    assert state.expire(now_s=0.5) == []
    assert state.expire(now_s=1.0) == []
    (again,) = state.take(2, 10, "m", now_s=1.0)
    assert (again.offset, again.deliveries) == (0, 2)
    assert state.committed == 0
    state.ack(0)
    assert state.committed == 2


def test_dead_after_max_deliveries():
    state = _state(max_deliveries=2)
    state.take(1, 10, "m", now_s=0)
    assert state.expire(now_s=1) == []
    state.take(1, 10, "m", now_s=1)
    assert state.expire(now_s=2) == [0]
    assert state.take(1, 10, "m", now_s=2) == []
    assert state.settle_dead(0) is True
    assert state.committed == 1


def test_late_ack_cancels_redelivery():
    state = _state()
    state.take(1, 10, "m", now_s=0)
    state.expire(now_s=5)
    assert state.ack(0) is True
    assert state.take(1, 10, "m", now_s=5) == []


def test_release_queues_in_flight_first():
    state = _state()
    state.take(3, 2, "old-owner", now_s=0)
    state.release()
    handouts = state.take(3, 10, "new-owner", now_s=0.1)
    assert [(h.offset, h.deliveries) for h in handouts] == [(0, 2), (1, 2), (2, 1)]

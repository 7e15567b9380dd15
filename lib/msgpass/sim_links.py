"""Links of the simulated network: how long a message takes, and what can happen to it.

A link is one direction between two nodes (a to b and b to a are two links, so
they can differ). ``LinkConfig`` describes it:

- ``latency``: the propagation delay, drawn per message from a distribution
  (``Constant``, ``Uniform``, ``Exponential``, ``LogNormal``).
- ``bandwidth_bytes_per_s``: if set, a message of ``size_bytes`` occupies the
  link for ``size_bytes / bandwidth_bytes_per_s`` seconds of transmission.
  Messages queue at the sender's end of the link in FIFO order, so a burst
  serializes: two 1000-byte messages sent together at 1000 B/s arrive 1 s apart.
- ``loss``: probability that a message disappears in transit.
- ``duplicate``: probability that the network delivers a second copy.
- ``reorder``: probability that a message takes an extra random delay and is
  overtaken by messages sent after it.

A link is FIFO unless ``reorder`` is above zero: a message never arrives
before one sent earlier on the same link, even when latencies are random,
because an arrival time is pushed back to the previous arrival. That makes
reordering a fault a lab turns on, instead of a side effect of jitter.

Every random draw comes from the simulation's single ``random.Random``, in a
fixed order per message, which is what makes a run replayable from its seed.

NOTE: real links lose packets in bursts and reorder them through parallel
paths. These draws are independent per message, the textbook simplification.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Latency",
    "Constant",
    "Uniform",
    "Exponential",
    "LogNormal",
    "LinkConfig",
    "DEFAULT_LATENCY_S",
]

DEFAULT_LATENCY_S = 0.001  # 1 ms: a round figure between a LAN (well below) and a WAN (above)


def _check_number(name: str, value: object, expected: str) -> None:
    # bool is a subclass of int, so without this check loss=True would mean certain loss.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"invalid {name}={value!r}: expected {expected} as an int or float, "
            f"got {type(value).__name__}"
        )


def _check_non_negative(name: str, value: float) -> None:
    _check_number(name, value, "a finite number >= 0")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"invalid {name}={value!r}: expected a finite number >= 0")


def _check_probability(name: str, value: float) -> None:
    _check_number(name, value, "a probability in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"invalid {name}={value!r}: expected a probability in [0, 1]")


class Latency:
    """Base class of latency distributions: ``sample(rng)`` draws one delay in seconds."""

    def sample(self, rng: random.Random) -> float:
        """Draw one delay, in seconds, from ``rng``."""
        raise NotImplementedError

    def mean(self) -> float:
        """Return the distribution's mean delay in seconds."""
        raise NotImplementedError

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """Return a function of no arguments that draws like ``sample(rng)``.

        The simulator calls it once per message, so subclasses return the
        cheapest callable that makes the same draws from ``rng``.
        """
        return functools.partial(self.sample, rng)


@dataclass(frozen=True)
class Constant(Latency):
    """Every message takes exactly ``delay_s`` seconds. Draws nothing from the generator."""

    delay_s: float

    def __post_init__(self) -> None:
        _check_non_negative("delay_s", self.delay_s)

    def sample(self, rng: random.Random) -> float:
        return self.delay_s

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        return itertools.repeat(self.delay_s).__next__  # returns delay_s on every call

    def mean(self) -> float:
        return self.delay_s


@dataclass(frozen=True)
class Uniform(Latency):
    """Delays spread evenly between ``low_s`` and ``high_s`` seconds."""

    low_s: float
    high_s: float

    def __post_init__(self) -> None:
        _check_non_negative("low_s", self.low_s)
        _check_non_negative("high_s", self.high_s)
        if self.high_s < self.low_s:
            raise ValueError(
                f"invalid Uniform latency: high_s={self.high_s} is below low_s={self.low_s}"
            )

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low_s, self.high_s)

    def mean(self) -> float:
        return (self.low_s + self.high_s) / 2


@dataclass(frozen=True)
class Exponential(Latency):
    """Memoryless delays with mean ``mean_s``: many short ones and a long tail.

    The service time of an M/M/1 queue, and a common stand-in for queueing
    delay on a busy path.
    """

    mean_s: float
    _rate: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_non_negative("mean_s", self.mean_s)
        if self.mean_s == 0:
            raise ValueError("invalid Exponential latency: mean_s must be > 0; use Constant(0)")
        object.__setattr__(self, "_rate", 1.0 / self.mean_s)

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(self._rate)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        return functools.partial(rng.expovariate, self._rate)

    def mean(self) -> float:
        return self.mean_s


@dataclass(frozen=True)
class LogNormal(Latency):
    """Delays whose logarithm is normal: median ``median_s``, spread ``sigma``.

    A common model of latencies with a tight body and a heavy right tail. The
    mean is ``median_s * exp(sigma**2 / 2)``.
    """

    median_s: float
    sigma: float

    def __post_init__(self) -> None:
        _check_non_negative("median_s", self.median_s)
        _check_non_negative("sigma", self.sigma)
        if self.median_s == 0:
            raise ValueError("invalid LogNormal latency: median_s must be > 0")

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(math.log(self.median_s), self.sigma)

    def mean(self) -> float:
        return self.median_s * math.exp(self.sigma**2 / 2)


@dataclass(frozen=True)
class LinkConfig:
    """The behaviour of one direction of a link; all probabilities are per message.

    ``reorder_window_s`` bounds the extra delay of a reordered message, which is
    drawn uniformly from ``[0, reorder_window_s]``. ``None`` means twice the
    latency's mean, enough to be overtaken by the next few messages.
    """

    latency: Latency = Constant(DEFAULT_LATENCY_S)
    bandwidth_bytes_per_s: float | None = None
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.latency, Latency):
            raise TypeError(
                f"invalid latency {self.latency!r}: expected Constant, Uniform, "
                f"Exponential or LogNormal"
            )
        if self.bandwidth_bytes_per_s is not None:
            _check_non_negative("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s)
            if self.bandwidth_bytes_per_s == 0:
                raise ValueError("invalid bandwidth_bytes_per_s=0: use None for unlimited")
        _check_probability("loss", self.loss)
        _check_probability("duplicate", self.duplicate)
        _check_probability("reorder", self.reorder)
        if self.reorder_window_s is not None:
            _check_non_negative("reorder_window_s", self.reorder_window_s)

    def effective_reorder_window_s(self) -> float:
        """Return the maximum extra delay of a reordered message, in seconds."""
        if self.reorder_window_s is not None:
            return self.reorder_window_s
        return 2.0 * self.latency.mean()


class _LinkState:
    """The mutable side of one link direction: its config and its FIFO bookkeeping."""

    __slots__ = (
        "config",
        "plain",
        "sample_latency",
        "exponential_rate",
        "transmit_free_at_s",
        "last_arrival_s",
    )

    def __init__(self, config: LinkConfig, rng: random.Random) -> None:
        self.transmit_free_at_s = 0.0  # when the sender's end finishes its queued transmissions
        self.last_arrival_s = 0.0  # latest in-order arrival, which keeps the link FIFO
        self.configure(config, rng)

    def configure(self, config: LinkConfig, rng: random.Random) -> None:
        self.config = config
        # No random faults and no bandwidth limit: the simulator's fast path applies.
        self.plain = config.bandwidth_bytes_per_s is None and not (
            config.loss or config.duplicate or config.reorder
        )
        self.sample_latency = config.latency.sampler(rng)
        # The rate of an Exponential latency, which the simulator's fast path
        # draws inline; 0.0 for the other distributions.
        latency = config.latency
        self.exponential_rate = latency._rate if type(latency) is Exponential else 0.0

    def copy_unused(self) -> _LinkState:
        """Return a link with this configuration and no traffic yet.

        Cheaper than building one from the config: the sampler, a function of
        the shared generator, is reused.
        """
        link = _LinkState.__new__(_LinkState)
        link.config = self.config
        link.plain = self.plain
        link.sample_latency = self.sample_latency
        link.exponential_rate = self.exponential_rate
        link.transmit_free_at_s = 0.0
        link.last_arrival_s = 0.0
        return link

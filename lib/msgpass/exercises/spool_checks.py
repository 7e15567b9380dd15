"""Checker for the spool-claim exercise of the file-system spool lab.

The learner writes ``claim_one(spool_dir, reader_id)``: take the oldest
message of ``spool_dir/new/`` by renaming it to
``spool_dir/claimed/<reader_id>/<same name>``, return the new path, and
return ``None`` when ``new/`` is empty. The sub-checks put real files into a
real ``msgpass.spool.Spool`` in a temporary directory and assert:

- safety: every message ends up in exactly one place, no message is returned
  to two claimers, and a claim stays where ``Spool.recover`` finds it;
- liveness: when ``claim_one`` returns ``None``, ``new/`` really is empty.

Races are tested twice. First deterministically: while the candidate runs, a
rival reader claims a file of ``new/`` just before the candidate's own
``os.rename``, ``os.replace``, ``os.remove``, ``os.unlink`` or ``os.link``
call on that file, with a seeded probability. Those functions are patched on
the ``os`` module for the duration of the sub-check, and only calls from the
checker's own thread are intercepted. ``pathlib`` and ``shutil`` call the
same functions, so claims written with them are intercepted as well.
Then for real: four threads run the candidate at once on 200 messages.

Left out on purpose: racing the candidate in separate processes. A function
defined in a notebook cell cannot be sent to a spawned process reliably;
the library's own tests race ``SpoolReader`` in real processes.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..spool import Spool, SpoolWriter
from .checking import CheckFailed, CheckReport, short_repr
from .timed_calls import TimedCheck

__all__ = ["check_spool_claim"]

EXERCISE_ID = "spool-claim"
RACE_ROUNDS = 6  # rounds of the deterministic race, each with its own seeded choices
RACE_MESSAGES = 6  # messages per round
STEAL_PROBABILITY = 0.5  # chance that the rival takes the file before each intercepted call
THREADS = 4
THREAD_MESSAGES = 200
THREAD_JOIN_TIMEOUT_S = 30.0
_INTERCEPTED = ("rename", "replace", "remove", "unlink", "link")

ClaimOne = Callable[[Path, str], Any]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@contextmanager
def _spool_with(payloads: list[bytes]) -> Iterator[tuple[Spool, list[str]]]:
    """Yield a fresh durable-off spool holding ``payloads``, and their ids in order."""
    with tempfile.TemporaryDirectory(prefix="spool-check-") as directory:
        spool = Spool(Path(directory) / "spool", durable=False)
        writer = SpoolWriter(spool, "writer")
        yield spool, [writer.put(payload) for payload in payloads]


def _locations(spool: Spool) -> dict[str, list[str]]:
    """Map each file name to every place in the spool where it is visible."""
    places: dict[str, list[str]] = {}
    for name in os.listdir(spool.new_dir):
        places.setdefault(name, []).append("new/")
    for reader_dir in sorted(spool.claimed_dir.iterdir()):
        if reader_dir.is_dir():
            for name in os.listdir(reader_dir):
                places.setdefault(name, []).append(f"claimed/{reader_dir.name}/")
    return places


def _call(claim_one: ClaimOne, spool: Spool, reader_id: str) -> Path | None:
    """Run the candidate once; check that it returned a path or ``None``."""
    spool.reader_dir(reader_id)
    try:
        result = claim_one(spool.root, reader_id)
    except FileNotFoundError as error:
        raise CheckFailed(
            expected="claim_one() to move on to the next file when another reader won the race",
            actual=f"FileNotFoundError escaped from claim_one(): {error}",
            hint="another reader renamed the file first: catch FileNotFoundError around "
            "os.rename and try the next name. Checking os.path.exists() first does not help, "
            "because the file can vanish between the check and the rename",
        ) from None
    if result is None:
        return None
    if not isinstance(result, (str, os.PathLike)):
        raise CheckFailed(
            expected="claim_one() to return a Path or None",
            actual=f"{type(result).__name__} {short_repr(result)}",
            hint="return the path the message was renamed to, or None when new/ is empty",
        )
    return Path(result)


def _expect_all_in_one_place(spool: Spool, ids: list[str], where: str) -> dict[str, str]:
    """Raise ``CheckFailed`` unless each id is visible exactly once; return id -> place."""
    places = _locations(spool)
    found: dict[str, str] = {}
    for message_id in ids:
        seen = places.get(message_id, [])
        if len(seen) > 1:
            raise CheckFailed(
                expected=f"message {message_id} in exactly one place {where}",
                actual=f"it is in {' and '.join(seen)}: two readers now own it",
                hint="claim with a single os.rename from new/ to claimed/<reader_id>/. Copying "
                "and then deleting (or linking and then unlinking) lets two readers both "
                "take a copy before either deletes the original",
            )
        if not seen:
            raise CheckFailed(
                expected=f"message {message_id} in new/ or in claimed/<reader>/ {where}",
                actual="it is in neither, so recover() can never return it",
                hint="rename the file to spool_dir / 'claimed' / reader_id / name, the one "
                "place where claims live",
            )
        found[message_id] = seen[0]
    return found


def _drain(claim_one: ClaimOne, spool: Spool, reader_id: str, limit: int) -> list[Path]:
    """Call the candidate until it returns ``None``; at most ``limit`` claims."""
    claimed: list[Path] = []
    while (path := _call(claim_one, spool, reader_id)) is not None:
        claimed.append(path)
        if len(claimed) > limit:
            raise CheckFailed(
                expected=f"at most {limit} claims from a spool of {limit} messages",
                actual=f"{len(claimed)} claims so far: {short_repr([p.name for p in claimed])}",
                hint="take the file out of new/ when you claim it, so that it cannot be "
                "claimed again",
            )
    return claimed


def _expect_empty_new(spool: Spool, what: str) -> None:
    left = spool.new_ids()
    if left:
        raise CheckFailed(
            expected=f"new/ to be empty once claim_one() returned None ({what})",
            actual=f"{len(left)} messages still waiting: {short_repr(left)}",
            hint="return None only after trying every name in new/; when a rename fails "
            "because another reader won, go on to the next name",
        )


@contextmanager
def _rival_interleaving(spool: Spool, rng: random.Random) -> Iterator[list[str]]:
    """Let a rival reader claim files of ``new/`` just before the candidate touches them.

    Yields the list of names the rival took. Only calls from the current
    thread are intercepted, and the ``os`` functions are restored on exit.
    """
    originals = {name: getattr(os, name) for name in _INTERCEPTED}
    rename = originals["rename"]
    rival_dir = spool.reader_dir("rival")
    new_dir = os.path.realpath(spool.new_dir)
    checker_thread = threading.get_ident()
    stolen: list[str] = []

    def intercept(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(source: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == checker_thread and isinstance(source, (str, os.PathLike)):
                path = os.fspath(source)
                in_new = os.path.realpath(os.path.dirname(path)) == new_dir
                if in_new and rng.random() < STEAL_PROBABILITY:
                    name = os.path.basename(path)
                    try:
                        rename(path, rival_dir / name)
                        stolen.append(name)
                    except FileNotFoundError:
                        pass  # already gone: nothing for the rival to take
            return original(source, *args, **kwargs)

        return call

    for name, original in originals.items():
        setattr(os, name, intercept(original))
    try:
        yield stolen
    finally:
        for name, original in originals.items():
            setattr(os, name, original)


# ---------------------------------------------------------------------------
# The sub-checks, in the order they run
# ---------------------------------------------------------------------------


def check_one_claim(claim_one: ClaimOne, rng: random.Random) -> None:
    payloads = [b"first", b"second", b"third"]
    with _spool_with(payloads) as (spool, ids):
        path = _call(claim_one, spool, "r1")
        if path is None:
            raise CheckFailed(
                expected="a path from claim_one() on a spool with 3 messages in new/",
                actual="None",
            )
        if path.name != ids[0]:
            raise CheckFailed(
                expected=f"the oldest message, {ids[0]}, under its own name",
                actual=f"a file named {path.name}",
                hint="sort the names in new/ and keep each name: the name is the message id",
            )
        if not path.is_file():
            raise CheckFailed(
                expected="the returned path to name the claimed file",
                actual=f"{path} does not exist",
                hint="return the path you renamed the file to",
            )
        if path.read_bytes() != payloads[0]:
            raise CheckFailed(
                expected=f"the claimed file to contain {payloads[0]!r}",
                actual=short_repr(path.read_bytes()),
                hint="move the file itself with os.rename; do not rewrite it",
            )
        if spool.new_ids() != ids[1:]:
            raise CheckFailed(
                expected=f"new/ to contain the other two messages {ids[1:]}",
                actual=short_repr(spool.new_ids()),
                hint="a claimed message must leave new/, so that no other reader takes it",
            )


def check_order_and_empty(claim_one: ClaimOne, rng: random.Random) -> None:
    payloads = [b"%d" % n for n in range(5)]
    with _spool_with(payloads) as (spool, ids):
        (spool.tmp_dir / "half-written").write_bytes(b"not a message yet")
        claimed = _drain(claim_one, spool, "r1", limit=len(ids))
        names = [path.name for path in claimed]
        if names != ids:
            raise CheckFailed(
                expected=f"the messages claimed oldest first: {short_repr(ids)}",
                actual=short_repr(names),
                hint="sorted(os.listdir(new_dir)) gives the oldest first, because each name "
                "starts with a zero-padded timestamp. Read only new/, never tmp/",
            )
        _expect_empty_new(spool, "one reader, no rival")


def check_crash_then_recover(claim_one: ClaimOne, rng: random.Random) -> None:
    with _spool_with([b"precious"]) as (spool, ids):
        path = _call(claim_one, spool, "doomed")
        if path is None:
            raise CheckFailed(expected="a path from claim_one()", actual="None")
        # The reader "doomed" now dies without acknowledging: recover() must find its claim.
        report = spool.recover(lease_s=0.0)
        if report.returned != (ids[0],):
            raise CheckFailed(
                expected=f"recover() to return the dead reader's claim {ids[0]} to new/",
                actual=f"recover() returned {list(report.returned)}; the claim is at {path}",
                hint="rename into spool_dir / 'claimed' / reader_id / name: recover() looks for "
                "claims only in the reader directories under claimed/, so a claim anywhere "
                "else is lost when its reader dies",
            )
        heir = _call(claim_one, spool, "heir")
        if heir is None or heir.read_bytes() != b"precious":
            raise CheckFailed(
                expected="the recovered message to be claimable again, with its payload",
                actual=f"claim_one() returned {heir}",
            )


def check_lost_race(claim_one: ClaimOne, rng: random.Random) -> None:
    total_stolen = 0
    total_won = 0
    for round_index in range(RACE_ROUNDS):
        payloads = [b"round %d message %d" % (round_index, n) for n in range(RACE_MESSAGES)]
        with _spool_with(payloads) as (spool, ids):
            with _rival_interleaving(spool, rng) as stolen:
                claimed = _drain(claim_one, spool, "r1", limit=len(ids))
            where = f"after round {round_index}, in which the rival took {len(stolen)} messages"
            places = _expect_all_in_one_place(spool, ids, where)
            _expect_empty_new(spool, f"a rival reader took {len(stolen)} of them")
            for path in claimed:
                owner = places.get(path.name)
                if owner != "claimed/r1/":
                    raise CheckFailed(
                        expected=f"{path.name}, which claim_one() returned, in claimed/r1/",
                        actual=f"it is in {owner}",
                        hint="return a message only when your own rename succeeded",
                    )
            total_stolen += len(stolen)
            total_won += len(claimed)
    if total_won == 0 or total_stolen == 0:
        raise CheckFailed(
            expected="claim_one() to win some messages and the rival to win others",
            actual=f"claim_one() won {total_won}, the rival {total_stolen}",
            hint="claim with os.rename (or Path.rename) on the file in new/",
        )


def check_threads(claim_one: ClaimOne, rng: random.Random) -> None:
    payloads = [b"%d" % n for n in range(THREAD_MESSAGES)]
    with _spool_with(payloads) as (spool, ids):
        start = threading.Barrier(THREADS, timeout=THREAD_JOIN_TIMEOUT_S)
        results: dict[str, list[Path]] = {}
        failures: list[BaseException] = []

        def run(reader_id: str) -> None:
            try:
                start.wait()
                results[reader_id] = _drain(claim_one, spool, reader_id, limit=len(ids))
            except BaseException as error:  # reported by the checker's thread below
                failures.append(error)

        readers = [f"t{n}" for n in range(THREADS)]
        for reader_id in readers:
            spool.reader_dir(reader_id)
        threads = [
            threading.Thread(target=run, args=(reader_id,), name=f"spool-check-{reader_id}")
            for reader_id in readers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(THREAD_JOIN_TIMEOUT_S)
        if any(thread.is_alive() for thread in threads):
            raise CheckFailed(
                expected=f"{THREADS} threads to drain {len(ids)} messages within "
                f"{THREAD_JOIN_TIMEOUT_S:g} s",
                actual="some threads were still running",
                hint="return None as soon as new/ has no name left to try",
            )
        if failures:
            raise failures[0]

        returned = [path.name for paths in results.values() for path in paths]
        duplicates = sorted({name for name in returned if returned.count(name) > 1})
        if duplicates:
            raise CheckFailed(
                expected="each message returned to exactly one of the racing threads",
                actual=f"{len(duplicates)} returned twice, such as {duplicates[0]}",
                hint="only the rename that succeeded owns the message; a reader whose rename "
                "failed must not return it",
            )
        _expect_all_in_one_place(spool, ids, f"after {THREADS} threads raced")
        _expect_empty_new(spool, f"{THREADS} threads racing")


def check_spool_claim(claim_one: ClaimOne, *, seed: int = 0, quiet: bool = False) -> CheckReport:
    """Check a learner's ``claim_one(spool_dir, reader_id) -> Path | None``.

    Prints a one-line summary and returns a ``CheckReport`` when every check
    passes. Raises ``ExerciseFailed`` (an ``AssertionError``) naming the first
    failed check, what was expected, what happened, and a hint.
    """
    check = TimedCheck(EXERCISE_ID, seed=seed)
    check.add(
        "one claim",
        check_one_claim,
        hint="rename new/<name> to claimed/<reader_id>/<name> and return the new path",
    )
    check.add(
        "oldest first, then None",
        check_order_and_empty,
        hint="try the names of new/ in sorted order and return None when none is left",
    )
    check.add(
        "crash after claim, then recover()",
        check_crash_then_recover,
        hint="a claim must live in claimed/<reader_id>/ under the message's own name",
    )
    check.add(
        "rival reader wins some renames",
        check_lost_race,
        hint="catch FileNotFoundError from os.rename and try the next name",
    )
    check.add(
        f"{THREADS} threads racing",
        check_threads,
        hint="claim with one os.rename, and return a message only when that rename succeeded",
    )
    return check.run(claim_one, quiet=quiet)

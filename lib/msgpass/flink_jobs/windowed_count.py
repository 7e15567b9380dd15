# PyFlink is installed only in .venv-flink, so mypy in the main environment finds no stubs.
# mypy: disable-error-code="import-not-found"
"""A PyFlink job: count and sum events per key in tumbling event-time windows.

This script runs under the separate PyFlink environment (``.venv-flink``),
started by ``msgpass.flink_support.run_flink_job``. It never runs inside the
notebook kernel, because PyFlink 2.3 pins older numpy, pandas and pyarrow than
the book's main environment.

The job, written with PyFlink's DataStream API:

1. reads every ``*.jsonl`` file in ``--input``, in name order, with one
   ``FileSource`` per file chained in a ``HybridSource``. Each line is one
   JSON event ``{"key", "value", "timestamp_ms"}``;
2. takes each event's ``timestamp_ms`` as its event time and generates
   watermarks that trail the maximum timestamp by ``--out-of-orderness-ms``;
3. keys the stream by ``key`` and counts and sums values in tumbling windows of
   ``--size-ms``, keeping each window open for ``--allowed-lateness-ms``;
4. prints one JSON line per window result to stdout, the same object that
   ``msgpass.windowing.WindowResult.to_json`` returns, and also writes the
   lines to ``--output`` if given.

Only the JSON lines go to stdout; Flink's own logging goes to stderr or its
log files, so the caller can parse stdout line by line.

Run it by hand with::

    .venv-flink/bin/python lib/msgpass/flink_jobs/windowed_count.py --input DIR --size-ms 1000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
from pyflink.datastream.connectors.hybrid_source import HybridSource
from pyflink.datastream.functions import ProcessWindowFunction
from pyflink.datastream.window import TimeWindow, TumblingEventTimeWindows


class EventTimeFromField(TimestampAssigner):  # type: ignore[misc]
    """Take the event time from the event's ``timestamp_ms`` field."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value[2])


class CountAndSum(ProcessWindowFunction):  # type: ignore[misc]
    """Emit one JSON line per key and window with the window's count and sum."""

    def process(
        self, key: str, context: ProcessWindowFunction.Context[TimeWindow], elements: Iterable[Any]
    ) -> Iterable[str]:
        count = 0
        total = 0
        for element in elements:
            count += 1
            total += int(element[1])
        window = context.window()
        yield json.dumps(
            {
                "key": key,
                "window_start_ms": window.start,
                "window_end_ms": window.end,
                "count": count,
                "total": total,
            }
        )


def parse_event(line: str) -> tuple[str, int, int]:
    """Parse one JSON line into a ``(key, value, timestamp_ms)`` row."""
    record = json.loads(line)
    return str(record["key"]), int(record["value"]), int(record["timestamp_ms"])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="directory of *.jsonl event files")
    parser.add_argument("--size-ms", type=int, required=True, help="window size in milliseconds")
    parser.add_argument(
        "--out-of-orderness-ms",
        type=int,
        default=0,
        help="how far behind the newest event the watermark trails, in milliseconds",
    )
    parser.add_argument(
        "--allowed-lateness-ms",
        type=int,
        default=0,
        help="how long a fired window still accepts late events, in milliseconds",
    )
    parser.add_argument("--output", help="also write the result lines to this file")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    files = sorted(str(path.resolve()) for path in Path(args.input).glob("*.jsonl"))
    if not files:
        print(f"no *.jsonl files found in {args.input}", file=sys.stderr)
        return 2

    env = StreamExecutionEnvironment.get_execution_environment()
    # One task keeps the example deterministic: each file is read in full, in
    # name order, and one watermark generator receives every event.
    env.set_parallelism(1)
    # The Python workers that run the functions below are started by the JVM,
    # which runs "python" from PATH unless an interpreter is configured.
    env.set_python_executable(sys.executable)

    # One FileSource may read its files in any order, which would make events of
    # a later file arrive before an earlier one. A HybridSource reads its sources
    # one after the other, so chaining one FileSource per file keeps name order.
    line_format = StreamFormat.text_line_format()
    sources = [FileSource.for_record_stream_format(line_format, path).build() for path in files]
    builder = HybridSource.builder(sources[0])
    for later in sources[1:]:
        builder.add_source(later)
    source = builder.build()
    lines = env.from_source(
        source, WatermarkStrategy.no_watermarks(), "jsonl-files", type_info=Types.STRING()
    )
    events = lines.filter(lambda line: bool(line.strip())).map(
        parse_event, output_type=Types.TUPLE([Types.STRING(), Types.LONG(), Types.LONG()])
    )
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(args.out_of_orderness_ms)
    ).with_timestamp_assigner(EventTimeFromField())
    results = (
        events.assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda event: event[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.milliseconds(args.size_ms)))
        .allowed_lateness(args.allowed_lateness_ms)
        .process(CountAndSum(), output_type=Types.STRING())
    )

    with contextlib.ExitStack() as stack:
        output = None
        if args.output:
            output = stack.enter_context(open(args.output, "w", encoding="utf-8"))
        collected = stack.enter_context(results.execute_and_collect("windowed-count"))
        for line in collected:
            print(line, flush=True)
            if output is not None:
                output.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Tests for msgpass.flink_support: finding Java and PyFlink, and running the real job.

The real PyFlink job runs only when Java and ``.venv-flink`` are present. It
is skipped otherwise, unless ``CI=true``, where a missing environment fails.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from msgpass.errors import JobFailed, ServiceUnavailable
from msgpass.flink_support import (
    JOBS_DIR,
    FlinkSetup,
    find_flink,
    find_flink_python,
    find_java,
    parse_java_version,
    run_flink_job,
)
from msgpass.windowing import Event, WindowResult, aggregate, write_events


def fake_java(folder: Path, version_line: str) -> Path:
    """Write a ``java`` script that prints ``version_line`` to stderr, as java -version does."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n", encoding="utf-8")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("no version here", None),
    ],
)
def test_parse_java_version(text: str, major: int | None) -> None:
    assert parse_java_version(text) == major


def test_find_java_from_java_home(tmp_path: Path) -> None:
    fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')
    java = find_java({"JAVA_HOME": str(tmp_path), "PATH": ""})
    assert java.major == 17
    assert java.path == tmp_path / "bin" / "java"


def test_find_java_rejects_java_8(tmp_path: Path) -> None:
    fake_java(tmp_path, 'java version "1.8.0_392"')
    with pytest.raises(ServiceUnavailable, match="version 8"):
        find_java({"JAVA_HOME": str(tmp_path), "PATH": ""})


def test_find_java_missing_names_apt(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="openjdk-17-jre-headless"):
        find_java({"PATH": str(tmp_path)})


def test_find_java_bad_java_home(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="JAVA_HOME"):
        find_java({"JAVA_HOME": str(tmp_path / "missing"), "PATH": ""})


def test_flink_python_from_variable(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("", encoding="utf-8")
    assert find_flink_python({"MSGPASS_FLINK_PYTHON": str(python)}) == python


def test_flink_python_missing_names_make(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="make flink-env"):
        find_flink_python({}, root=tmp_path)


def test_find_flink_prints_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_java(tmp_path / "jdk", 'openjdk version "17.0.15" 2025-04-15')
    environ = {"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}
    assert find_flink(environ, root=tmp_path) is None
    output = capsys.readouterr().out
    assert output.count("\n") == 1
    assert "make flink-env" in output


def test_find_flink_raises_under_ci(tmp_path: Path) -> None:
    environ = {"PATH": str(tmp_path), "CI": "true"}
    with pytest.raises(ServiceUnavailable, match="Java"):
        find_flink(environ, root=tmp_path)


def test_find_flink_with_fakes(tmp_path: Path) -> None:
    fake_java(tmp_path / "jdk", 'openjdk version "21" 2023-09-19')
    python = tmp_path / "python"
    python.write_text("", encoding="utf-8")
    environ = {"JAVA_HOME": str(tmp_path / "jdk"), "MSGPASS_FLINK_PYTHON": str(python)}
    setup = find_flink(environ)
    assert setup is not None
    assert setup.java.major == 21
    assert setup.python == python


def fake_setup(tmp_path: Path) -> FlinkSetup:
    """Return a setup whose "PyFlink" python is this test's own interpreter."""
    fake_java(tmp_path / "jdk", 'openjdk version "17.0.15" 2025-04-15')
    environ = {"JAVA_HOME": str(tmp_path / "jdk"), "MSGPASS_FLINK_PYTHON": sys.executable}
    setup = find_flink(environ)
    assert setup is not None
    return setup


def test_run_job_parses_json_lines(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint('{\"n\": 1}')\nprint('{\"n\": 2}')\n", encoding="utf-8")
    run = run_flink_job(fake_setup(tmp_path), script)
    assert run.records == ({"n": 1}, {"n": 2})


def test_run_job_failure_has_stderr(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\nprint('broken input', file=sys.stderr)\nsys.exit(3)\n", encoding="utf-8"
    )
    with pytest.raises(JobFailed, match="broken input") as caught:
        run_flink_job(fake_setup(tmp_path), script)
    assert caught.value.returncode == 3


def test_run_job_rejects_non_json(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('hello')\n", encoding="utf-8")
    with pytest.raises(JobFailed, match="not JSON"):
        run_flink_job(fake_setup(tmp_path), script)


def by_window(result: WindowResult) -> tuple[int, str]:
    return result.window_start_ms, result.key


def test_real_job_matches_library(tmp_path: Path) -> None:
    setup = find_flink()  # raises under CI=true when Java or .venv-flink is missing
    if setup is None:
        pytest.skip("Java 11+ or the PyFlink environment (.venv-flink) is not installed")
    events = [Event(f"k{i % 3}", i, 250 * i + (100 if i % 2 else 0)) for i in range(24)]
    write_events(events, tmp_path / "in", files=2)
    args = ["--input", str(tmp_path / "in"), "--size-ms", "1000", "--out-of-orderness-ms", "200"]
    run = run_flink_job(setup, JOBS_DIR / "windowed_count.py", args, timeout_s=180)
    flink = sorted((WindowResult(**record) for record in run.records), key=by_window)
    library = sorted(aggregate(events, 1000, out_of_orderness_ms=200).results, key=by_window)
    assert library
    assert flink == library

"""Find Java and the PyFlink environment, and run a PyFlink job as a child process.

PyFlink 2.3 pins older numpy, pandas and pyarrow than the book's main
environment, so it lives in its own virtual environment (``.venv-flink`` at
the repository root, made by ``make flink-env``) and the notebook kernel never
imports it. A lab calls ``find_flink`` once. That returns a ``FlinkSetup``, or
prints one message saying what to install and returns None, so the lab can
skip its Flink cells. With the environment variable ``CI=true`` a missing
piece raises ``ServiceUnavailable`` instead, so a CI run cannot pass by
skipping. ``run_flink_job`` then runs a job script under that interpreter
with a timeout and returns the JSON lines it printed.

Left out on purpose: submitting jobs to a Flink cluster. Each job runs in
Flink's local mini-cluster inside one JVM, started by PyFlink for that job.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JobFailed, MessagingTimeout, ServiceUnavailable

__all__ = [
    "MIN_JAVA_MAJOR",
    "JOBS_DIR",
    "JavaInstallation",
    "FlinkSetup",
    "FlinkJobRun",
    "parse_java_version",
    "find_java",
    "find_flink_python",
    "find_flink",
    "run_flink_job",
]

MIN_JAVA_MAJOR = 11  # the oldest Java that Flink 2.x runs on
JOBS_DIR = Path(__file__).resolve().parent / "flink_jobs"
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
JAVA_INSTALL_HINT = "install Java with: sudo apt-get install openjdk-17-jre-headless"
FLINK_INSTALL_HINT = (
    "create it with: make flink-env (a virtual environment .venv-flink with "
    "apache-flink==2.3.0, about 850 MB), or set MSGPASS_FLINK_PYTHON to the python "
    "of an environment that has apache-flink installed"
)
VERSION_TIMEOUT_S = 10.0
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class JavaInstallation:
    """A ``java`` executable, its major version and the first line of ``java -version``."""

    path: Path
    major: int
    version_line: str


@dataclass(frozen=True)
class FlinkSetup:
    """Everything needed to run a PyFlink job: Java and the PyFlink interpreter."""

    java: JavaInstallation
    python: Path


@dataclass(frozen=True)
class FlinkJobRun:
    """One finished job: the JSON objects it printed, its stderr tail and its wall time."""

    records: tuple[dict[str, Any], ...]
    duration_s: float
    stderr_tail: str


def parse_java_version(text: str) -> int | None:
    """Return the major version from ``java -version`` output, or None if there is none.

    Java 8 and older print ``"1.8.0_392"`` (major 8), later ones ``"17.0.15"``
    or ``"21"``. The output looks like ``openjdk version "17.0.15" 2025-04-15``.
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        return None
    first = int(match.group(1))
    if first == 1 and match.group(2) is not None:
        return int(match.group(2))
    return first


def find_java(environ: Mapping[str, str] | None = None) -> JavaInstallation:
    """Find ``java`` in ``$JAVA_HOME/bin`` or on PATH and check its version.

    Raises ``ServiceUnavailable`` when no ``java`` is found, when it cannot be
    run, or when it is older than ``MIN_JAVA_MAJOR``.
    """
    env = os.environ if environ is None else environ
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if not candidate.is_file():
            raise ServiceUnavailable(
                "Java",
                str(candidate),
                f"fix or unset JAVA_HOME ({java_home}), or {JAVA_INSTALL_HINT}",
            )
        java = str(candidate)
    else:
        found = shutil.which("java", path=env.get("PATH"))
        if found is None:
            raise ServiceUnavailable("Java", "java on PATH", JAVA_INSTALL_HINT)
        java = found

    try:
        completed = subprocess.run(
            [java, "-version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ServiceUnavailable(
            "Java", java, f"running '{java} -version' failed ({error}); {JAVA_INSTALL_HINT}"
        ) from error
    output = completed.stderr + completed.stdout  # java -version writes to stderr
    major = parse_java_version(output)
    if major is None or major < MIN_JAVA_MAJOR:
        found_version = "an unknown version" if major is None else f"version {major}"
        raise ServiceUnavailable(
            f"Java {MIN_JAVA_MAJOR} or later",
            f"{java} ({found_version})",
            JAVA_INSTALL_HINT,
        )
    first_line = output.strip().splitlines()[0] if output.strip() else ""
    return JavaInstallation(Path(java), major, first_line)


def find_flink_python(environ: Mapping[str, str] | None = None, root: Path | None = None) -> Path:
    """Return the python of the PyFlink environment.

    ``MSGPASS_FLINK_PYTHON`` wins when set, otherwise ``.venv-flink/bin/python``
    under ``root`` (the repository root by default). Raises ``ServiceUnavailable``
    when that file does not exist.

    NOTE: only the file's existence is checked, not that pyflink imports, because
    importing pyflink takes about a second. A broken environment shows up as a
    ``JobFailed`` from ``run_flink_job``.
    """
    env = os.environ if environ is None else environ
    configured = env.get("MSGPASS_FLINK_PYTHON")
    if configured:
        python = Path(configured)
    else:
        python = (REPOSITORY_ROOT if root is None else root) / ".venv-flink" / "bin" / "python"
    if not python.is_file():
        raise ServiceUnavailable("The PyFlink environment", str(python), FLINK_INSTALL_HINT)
    return python


def find_flink(
    environ: Mapping[str, str] | None = None, root: Path | None = None
) -> FlinkSetup | None:
    """Find Java and the PyFlink environment, or explain what is missing.

    Returns a ``FlinkSetup`` when both are present. Otherwise prints one
    message with the install command and returns None, so a lab can skip its
    Flink cells, unless the environment variable ``CI`` is ``"true"``: then
    the ``ServiceUnavailable`` error is raised.
    """
    env = os.environ if environ is None else environ
    try:
        java = find_java(env)
        python = find_flink_python(env, root)
    except ServiceUnavailable as error:
        if env.get("CI") == "true":
            raise
        print(f"Skipping the Flink steps: {error}")
        return None
    return FlinkSetup(java, python)


def run_flink_job(
    setup: FlinkSetup,
    script: str | Path,
    args: Sequence[str] = (),
    *,
    timeout_s: float = 120.0,
) -> FlinkJobRun:
    """Run ``script`` under the PyFlink interpreter; return the JSON lines it printed.

    The job runs in its own process group (it starts a JVM, which starts
    Python workers), so on timeout the whole group is killed and reaped before
    ``MessagingTimeout`` is raised. A non-zero exit raises ``JobFailed`` with
    the end of stderr. Every line of stdout must be one JSON object.
    """
    env = dict(os.environ)
    env["JAVA_HOME"] = str(setup.java.path.resolve().parent.parent)
    # The JVM starts Python workers by name, so the PyFlink environment goes first on PATH.
    env["PATH"] = f"{setup.python.parent}{os.pathsep}{env.get('PATH', '')}"
    command = [str(setup.python), str(script), *args]

    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        _kill_group(process)
        raise MessagingTimeout(
            f"Flink job {script} did not finish within {timeout_s} s and was killed; "
            f"raise timeout_s if the machine is slow"
        ) from error
    finally:
        _kill_group(process)
    duration_s = time.perf_counter() - started

    stderr_tail = "\n".join(stderr.splitlines()[-STDERR_TAIL_LINES:])
    if process.returncode != 0:
        raise JobFailed(
            f"Flink job {script} exited with status {process.returncode}; "
            f"the end of its stderr:\n{stderr_tail}",
            returncode=process.returncode,
            stderr_tail=stderr_tail,
        )
    records = []
    for number, line in enumerate(stdout.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise JobFailed(
                f"Flink job {script} printed a line that is not JSON (line {number}: "
                f"{line[:100]!r}); jobs must print only JSON lines on stdout",
                returncode=process.returncode,
                stderr_tail=stderr_tail,
            ) from error
    return FlinkJobRun(tuple(records), duration_s, stderr_tail)


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill whatever is left of the job's process group, then reap the job itself."""
    # The group is already gone when the job and its JVM have exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    # NOTE: a process that survives SIGKILL for 10 s is left to the OS.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=VERSION_TIMEOUT_S)

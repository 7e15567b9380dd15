"""Private instances of real servers for a lab: Redis here, RabbitMQ in ``services_rabbitmq``.

A lab about a real broker needs a real broker, but it must not touch one the
machine already runs, and it must leave nothing behind. ``RedisServer`` and
``RabbitMQServer`` therefore start their own server process as the current
user, on a free loopback port, with every file in a temporary directory. They
wait until the server responds to a protocol-level probe (a deadline bounds the
wait), and stop it deterministically: a polite shutdown first, then SIGTERM
and SIGKILL to the whole process group after deadlines. The process is reaped
and the directory removed, so the port is free again when ``stop()`` returns.

A missing server program is a normal situation on a learner's laptop.
``service_available(name)`` tells whether the programs are installed, and
``require_service(name)`` is the one call a lab makes before starting a
server: it prints one message saying how to install the program and returns
``False``, so the lab can skip its work. When the environment variable ``CI``
is ``true`` a missing program is a failure instead, and
``ServiceUnavailable`` is raised. The environment variables
``MSGPASS_REDIS_SERVER`` and ``MSGPASS_RABBITMQ_SERVER`` override the program
paths, which is also how the tests simulate a missing program.

Left out on purpose: authentication, TLS, persistence and clustering. The
servers listen on 127.0.0.1 only and live no longer than the lab.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .errors import (
    MessagingError,
    MessagingTimeout,
    ServiceProgramNotExecutable,
    ServiceUnavailable,
)

__all__ = [
    "ServiceProgram",
    "PROGRAMS",
    "find_program",
    "service_available",
    "require_service",
    "free_port",
    "PrivateServer",
    "RedisServer",
]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0  # RabbitMQ needs about 6 s on two cores, Redis well under 1 s
STOP_TIMEOUT_S = 15.0  # for the polite shutdown, before SIGTERM to the process group
KILL_TIMEOUT_S = 5.0  # after SIGTERM, before SIGKILL
PROBE_TIMEOUT_S = 1.0  # one readiness probe: connect, send, read the reply
PROBE_INTERVAL_S = 0.05  # pause between two failed readiness probes
LOG_TAIL_BYTES = 2000  # how much of the server's output an error message quotes

STATE_NEW = "new"
STATE_RUNNING = "running"
STATE_STOPPED = "stopped"


@dataclasses.dataclass(frozen=True)
class ServiceProgram:
    """The location of a service's server program and the instructions to install it.

    ``env_var`` overrides ``default_path``; a bare name is looked up on ``PATH``.
    """

    service: str
    display_name: str
    env_var: str
    default_path: str
    install_hint: str


PROGRAMS: dict[str, ServiceProgram] = {
    "redis": ServiceProgram(
        service="redis",
        display_name="Redis",
        env_var="MSGPASS_REDIS_SERVER",
        default_path="redis-server",
        install_hint=(
            "install it with `apt-get install redis-server` (Debian, Ubuntu) or "
            "`brew install redis` (macOS), or set MSGPASS_REDIS_SERVER to its path"
        ),
    ),
    "rabbitmq": ServiceProgram(
        service="rabbitmq",
        display_name="RabbitMQ",
        env_var="MSGPASS_RABBITMQ_SERVER",
        # The Debian wrapper /usr/sbin/rabbitmq-server switches to the rabbitmq
        # user when started by root; this script runs as the current user.
        default_path="/usr/lib/rabbitmq/bin/rabbitmq-server",
        install_hint=(
            "install it with `apt-get install rabbitmq-server` (Debian, Ubuntu) or "
            "`brew install rabbitmq` (macOS), or set MSGPASS_RABBITMQ_SERVER to the "
            "rabbitmq-server script in the same folder as rabbitmqctl"
        ),
    ),
}


def _program_spec(service: str) -> ServiceProgram:
    try:
        return PROGRAMS[service]
    except KeyError:
        known = ", ".join(sorted(PROGRAMS))
        raise ValueError(f"unknown service {service!r}; expected one of: {known}") from None


def _resolve(path: str) -> str | None:
    """Return the executable that ``path`` names, or None when there is none."""
    if os.sep in path:
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which(path)


def _check_program(spec: ServiceProgram, requested: str) -> str:
    """Return the executable ``requested`` names, or raise an error that explains what is wrong."""
    program = _resolve(requested)
    if program is not None:
        return program
    if os.sep in requested and os.path.exists(requested):
        if os.path.isdir(requested):
            problem = "is a directory, not an executable file"
        elif not os.path.isfile(requested):
            problem = "is not a regular file, so it cannot be run"
        else:
            problem = "is not executable (set its execute permission with chmod +x)"
        raise ServiceProgramNotExecutable(spec.display_name, requested, problem, spec.install_hint)
    raise ServiceUnavailable(spec.display_name, requested, spec.install_hint)


def find_program(service: str) -> str:
    """Return the path of the server program of ``service`` (``"redis"`` or ``"rabbitmq"``).

    Raises ``ServiceUnavailable`` with installation instructions when the
    program is missing, and its subclass ``ServiceProgramNotExecutable`` when
    the path exists but cannot be run (a directory, or a file without the
    execute permission). For RabbitMQ, ``rabbitmqctl`` next to the server
    script and Erlang's ``epmd`` on ``PATH`` must exist too.
    """
    spec = _program_spec(service)
    requested = os.environ.get(spec.env_var) or spec.default_path
    program = _check_program(spec, requested)
    if service == "rabbitmq":
        for helper in (str(Path(program).parent / "rabbitmqctl"), "epmd"):
            _check_program(spec, helper)
    return program


def service_available(service: str) -> bool:
    """Return whether the programs of ``service`` are installed."""
    try:
        find_program(service)
    except ServiceUnavailable:
        return False
    return True


def require_service(service: str) -> bool:
    """Check that ``service`` can be started, for a lab that needs it.

    Returns True when the programs are installed. When they are missing and
    the environment variable ``CI`` is ``true``, raises ``ServiceUnavailable``
    so that a build machine without the server fails loudly. Otherwise prints
    one message saying what is missing and how to install it, and returns
    False, so that the lab can skip the cells that need the server.
    """
    try:
        find_program(service)
    except ServiceUnavailable as error:
        if os.environ.get("CI") == "true":
            raise
        print(f"{error}. The cells that need it will print 'skipped' instead of running.")
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    NOTE: another process can take the port between this call and the
    server's bind. Redis and RabbitMQ cannot be configured to bind port 0 and
    report the port they got, so a start that fails reports the server's
    output, which then names the port conflict.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def _read_tail(path: Path) -> str:
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - LOG_TAIL_BYTES))
            return file.read().decode("utf-8", "replace").strip()
    except OSError as error:
        return f"(could not read {path}: {error})"


_RUNNING: set[PrivateServer] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    """Stop servers that are still running when the interpreter exits, as a kernel restart does."""
    for server in list(_RUNNING):
        try:
            server.stop()
        except MessagingError:
            log.exception("could not stop %r at interpreter exit", server)


class PrivateServer:
    """A server process owned by this Python process, on a free loopback port.

    Subclasses define how to build the command line (``_command``), how to
    probe readiness (``_probe``) and how to ask the server to stop
    (``_request_shutdown``). This class does the rest: the temporary
    directory, the process group, the readiness deadline, the stop sequence
    and the bookkeeping for ``stats()``.

    Use it as a context manager, or call ``start()`` and ``stop()``. Both are
    safe to call twice. ``start()`` after ``stop()`` raises
    ``MessagingError``, because the temporary directory is gone.
    """

    service = ""  # the key in PROGRAMS
    url_scheme = ""

    def __init__(
        self, *, host: str = "127.0.0.1", start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        if start_timeout_s <= 0:
            raise ValueError(f"start_timeout_s must be positive, got {start_timeout_s!r}")
        self.host = host
        self.port = 0
        self.start_timeout_s = start_timeout_s
        self.state = STATE_NEW
        self.startup_s: float | None = None
        self.shutdown_s: float | None = None
        self.killed = False
        self._started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._output_path: Path | None = None
        self._program: str | None = None  # the server program's path, once start() found it

    # --- what subclasses provide -------------------------------------------

    def _command(self, program: str, directory: Path) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _probe(self) -> bool:
        raise NotImplementedError

    def _request_shutdown(self, timeout_s: float) -> None:
        """Ask the server to exit on its own; the caller then waits for the process."""

    def _cleanup(self) -> None:
        """Stop helper processes that the server needed, after the server exited."""

    # --- public API ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The address a client library accepts, for example ``redis://127.0.0.1:6379``."""
        return f"{self.url_scheme}://{self.host}:{self.port}"

    @property
    def directory(self) -> Path | None:
        """The temporary directory with the server's files, or None when not running."""
        return Path(self._tempdir.name) if self._tempdir is not None else None

    @property
    def pid(self) -> int | None:
        """The process id of the server program, or None before ``start()``."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the server and return once it responds to its readiness probe.

        Raises ``ServiceUnavailable`` when the program is not installed,
        ``MessagingTimeout`` when the server does not become ready within
        ``start_timeout_s``, and ``MessagingError`` when it exits during
        startup. In the two last cases the server is stopped and the error
        quotes the end of its output.
        """
        if self.state == STATE_RUNNING:
            return
        if self.state == STATE_STOPPED:
            raise MessagingError(f"{self!r} was stopped; create a new server instead")
        program = find_program(self.service)
        self._program = program
        self._tempdir = tempfile.TemporaryDirectory(prefix=f"msgpass-{self.service}-")
        directory = Path(self._tempdir.name)
        self.port = free_port(self.host)
        self._output_path = directory / "server-output.log"
        self._started_at = time.monotonic()
        log.info("starting %s on %s:%d in %s", self.service, self.host, self.port, directory)
        try:
            argv, env = self._command(program, directory)
            with self._output_path.open("wb") as output:
                self._process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=directory,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    # Its own process group, so that stop() can signal the server
                    # and every child it started, and Ctrl-C in a notebook does not.
                    start_new_session=True,
                )
        except OSError as error:
            self._cleanup()
            self._fail_start()
            message = f"could not start {self.service} from {program}: {error}"
            raise MessagingError(message) from error
        except BaseException:
            self._cleanup()
            self._fail_start()
            raise
        self.state = STATE_RUNNING
        _RUNNING.add(self)
        self._wait_ready()
        self.startup_s = time.monotonic() - self._started_at
        log.info(
            "%s ready on port %d after %.2f s (pid %d)",
            self.service,
            self.port,
            self.startup_s,
            self.pid,
        )

    def _wait_ready(self) -> None:
        deadline = self._started_at + self.start_timeout_s
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                tail = self._output_tail()
                code = self._process.returncode
                self.stop()
                output = f"its output ends with:\n{tail}" if tail else "it printed nothing"
                raise MessagingError(
                    f"{self.service} ({self._program}) exited with status {code} during startup on "
                    f"port {self.port}, and {output}"
                )
            if self._probe():
                return
            if time.monotonic() > deadline:
                tail = self._output_tail()
                self.stop()
                raise MessagingTimeout(
                    f"{self.service} did not respond on {self.host}:{self.port} within "
                    f"{self.start_timeout_s} s; raise start_timeout_s on a slow machine. "
                    f"Its output ends with:\n{tail}"
                )
            time.sleep(PROBE_INTERVAL_S)

    def stop(self) -> None:
        """Stop the server, reap its processes and remove its temporary directory.

        The server is first asked to shut down on its own, then its process
        group gets SIGTERM and finally SIGKILL, each after a deadline.
        ``killed`` records whether a signal was needed.
        """
        if self.state != STATE_RUNNING:
            self.state = STATE_STOPPED
            return
        began = time.monotonic()
        process = self._process
        assert process is not None
        if process.poll() is None:
            try:
                self._request_shutdown(STOP_TIMEOUT_S)
            except (OSError, subprocess.SubprocessError, MessagingError) as error:
                log.warning(
                    "polite shutdown of %s (pid %d) failed: %s", self.service, process.pid, error
                )
            self._wait_or_signal(process)
        # The server's own children (Erlang's helpers, for example) may outlive it briefly.
        self._signal_group(process.pid, signal.SIGKILL)
        self._cleanup()
        self.state = STATE_STOPPED
        _RUNNING.discard(self)
        self.shutdown_s = time.monotonic() - began
        self._fail_start()
        log.info(
            "%s on port %d stopped after %.2f s (killed=%s)",
            self.service,
            self.port,
            self.shutdown_s,
            self.killed,
        )

    def _wait_or_signal(self, process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            log.warning(
                "%s (pid %d) still running after %.0f s; sending SIGTERM",
                self.service,
                process.pid,
                STOP_TIMEOUT_S,
            )
        self.killed = True
        self._signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=KILL_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM; sending SIGKILL", self.service, process.pid)
        self._signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=KILL_TIMEOUT_S)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        # ProcessLookupError means that the whole group has exited already.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)

    def _fail_start(self) -> None:
        """Remove the temporary directory, as after a start that went wrong."""
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def _output_tail(self) -> str:
        return _read_tail(self._output_path) if self._output_path is not None else ""

    def stats(self) -> dict[str, Any]:
        """Return the server's state for display in a notebook."""
        return {
            "service": self.service,
            "state": self.state,
            "url": self.url,
            "pid": self.pid,
            "startup_s": self.startup_s,
            "shutdown_s": self.shutdown_s,
            "killed": self.killed,
            "directory": str(self.directory) if self.directory is not None else None,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state} {self.url} pid={self.pid}>"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _exchange(host: str, port: int, request: bytes, expected: bytes) -> bool:
    """Send ``request`` on a new connection; return whether the reply starts with ``expected``."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as connection:
            connection.sendall(request)
            reply = b""
            while len(reply) < len(expected):
                chunk = connection.recv(len(expected) - len(reply))
                if not chunk:
                    return False
                reply += chunk
            return reply == expected
    except OSError:
        return False


class RedisServer(PrivateServer):
    """A private ``redis-server`` with no persistence, for one lab.

    It listens on ``host`` and a free port, keeps its data in memory only
    (``--save ''`` and ``--appendonly no``), and is ready once it responds to
    ``PING`` with ``+PONG``::

        with RedisServer() as server:
            client = redis.Redis(host=server.host, port=server.port, socket_timeout=5)
    """

    service = "redis"
    url_scheme = "redis"

    def _command(self, program: str, directory: Path) -> tuple[list[str], dict[str, str]]:
        options = {
            "port": str(self.port),
            "bind": self.host,
            "dir": str(directory),
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "protected-mode": "yes",
            "loglevel": "warning",
        }
        argv = [program]
        for name, value in options.items():
            argv += [f"--{name}", value]
        return argv, dict(os.environ)

    def _probe(self) -> bool:
        return _exchange(self.host, self.port, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n")

    def _request_shutdown(self, timeout_s: float) -> None:
        # Without persistence, SIGTERM makes Redis exit at once and cleanly.
        assert self._process is not None
        self._process.terminate()

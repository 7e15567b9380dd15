"""A private RabbitMQ node for a lab, started as the current user on free loopback ports.

RabbitMQ is an Erlang program, and an Erlang node needs more than one port.
Clients speak AMQP 0-9-1 on the node port. Tools such as ``rabbitmqctl`` speak
the Erlang distribution protocol on the distribution port, and find it by
asking Erlang's port mapper daemon, ``epmd``. A node started the usual way
starts a shared ``epmd`` on port 4369 that outlives the node. That daemon
would be left behind as a child process of the notebook's kernel, and it
might belong to another user's RabbitMQ.

``RabbitMQServer`` therefore starts its own ``epmd`` on a private port and
points the node and ``rabbitmqctl`` at it with ``ERL_EPMD_PORT``. All three
ports (AMQP, distribution, port mapper) are bound to 127.0.0.1, and the
node's database, logs, configuration, Erlang cookie and pid file live in a
temporary directory. ``stop()`` runs ``rabbitmqctl -n <node> stop``, waits
for the node to exit, then stops the private ``epmd``.

Left out on purpose: plugins (the management UI among them), clustering,
TLS and users other than the default ``guest``, which RabbitMQ accepts only
from loopback addresses.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path

from .errors import MessagingError, MessagingTimeout
from .services import PROBE_INTERVAL_S, PrivateServer, _exchange, free_port

__all__ = [
    "AMQP_PROTOCOL_HEADER",
    "RabbitMQServer",
]

# A client opens an AMQP 0-9-1 connection with these 8 bytes. A broker that is
# ready replies with a method frame (frame type 1) carrying Connection.Start.
AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
AMQP_METHOD_FRAME = b"\x01"

EPMD_START_TIMEOUT_S = 5.0  # how long to wait for the private epmd to listen

_node_numbers = itertools.count(1)


class RabbitMQServer(PrivateServer):
    """A private RabbitMQ node with no plugins, for one lab.

    It is ready once its AMQP port responds to the protocol header with
    Connection.Start, which takes about 6 s on two cores with RabbitMQ 3.10.
    The default user ``guest`` with password ``guest`` can connect::

        with RabbitMQServer() as server:
            params = pika.ConnectionParameters(server.host, server.port)

    ``node`` is the Erlang node name, unique per Python process and server,
    which ``rabbitmqctl -n`` needs together with the environment in
    ``ctl_environment()``.
    """

    service = "rabbitmq"
    url_scheme = "amqp"

    def __init__(self, *, host: str = "127.0.0.1", start_timeout_s: float = 30.0) -> None:
        super().__init__(host=host, start_timeout_s=start_timeout_s)
        self.node = f"msgpass{os.getpid()}x{next(_node_numbers)}@localhost"
        self.dist_port = 0
        self.epmd_port = 0
        self._env: dict[str, str] = {}
        self._ctl = ""
        self._epmd: subprocess.Popen[bytes] | None = None

    def _command(self, program: str, directory: Path) -> tuple[list[str], dict[str, str]]:
        self.dist_port = free_port(self.host)
        self.epmd_port = free_port(self.host)
        self._ctl = str(Path(program).parent / "rabbitmqctl")
        config = directory / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.default = {self.host}:{self.port}\n")
        plugins = directory / "enabled_plugins"
        plugins.write_text("[].\n")
        self._env = dict(
            os.environ,
            # The Erlang cookie file is written to $HOME, so rabbitmqctl must see the same HOME.
            HOME=str(directory),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(directory / "log"),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_PID_FILE=str(directory / "rabbitmq.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        self._start_epmd(directory)
        return [program], self._env

    def _start_epmd(self, directory: Path) -> None:
        """Start a private epmd as our child, so that stop() can end it."""
        with (directory / "epmd-output.log").open("wb") as output:
            self._epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # epmd responds to a NAMES_REQ (length 1, byte 110) with its own port as 4 bytes.
        expected = self.epmd_port.to_bytes(4, "big")
        deadline = time.monotonic() + EPMD_START_TIMEOUT_S
        while time.monotonic() < deadline and self._epmd.poll() is None:
            if _exchange("127.0.0.1", self.epmd_port, b"\x00\x01n", expected):
                return
            time.sleep(PROBE_INTERVAL_S)
        tail = (directory / "epmd-output.log").read_text("utf-8", "replace").strip()
        raise MessagingError(
            f"epmd did not start on 127.0.0.1:{self.epmd_port} within {EPMD_START_TIMEOUT_S} s: "
            f"{tail or 'no output'}"
        )

    def _probe(self) -> bool:
        return _exchange(self.host, self.port, AMQP_PROTOCOL_HEADER, AMQP_METHOD_FRAME)

    def ctl_environment(self) -> dict[str, str]:
        """Return the environment that ``rabbitmqctl -n <node>`` needs to reach this node."""
        return dict(self._env)

    def rabbitmqctl(self, *args: str, timeout_s: float = 30.0) -> str:
        """Run ``rabbitmqctl -n <node> ARGS`` and return its standard output.

        Raises ``MessagingError`` with its output when it exits with an error
        status, and ``MessagingTimeout`` after ``timeout_s`` seconds.
        """
        try:
            result = subprocess.run(
                [self._ctl, "-n", self.node, *args],
                env=self._env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as error:
            command = " ".join(args)
            raise MessagingTimeout(
                f"rabbitmqctl {command} timed out after {timeout_s} s"
            ) from error
        output = result.stdout.decode("utf-8", "replace")
        if result.returncode != 0:
            errors = result.stderr.decode("utf-8", "replace").strip()
            command = " ".join(args)
            raise MessagingError(
                f"rabbitmqctl {command} failed with status {result.returncode}: {errors or output}"
            )
        return output

    def _request_shutdown(self, timeout_s: float) -> None:
        self.rabbitmqctl("stop", timeout_s=timeout_s)

    def _cleanup(self) -> None:
        if self._epmd is None:
            return
        self._epmd.terminate()
        try:
            self._epmd.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._epmd.kill()
            self._epmd.wait(timeout=5.0)
        self._epmd = None

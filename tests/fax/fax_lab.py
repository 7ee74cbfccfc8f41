"""A private fax line on this machine: HylaFAX + soft modems that call each other.

Used by ``tests/fax/conftest.py``; also runnable by hand (``python
tests/fax/fax_lab.py``: starts a lab, prints its port and spool, waits for
Ctrl-C). Recipe and measurements: ``/work/shared/fax-lab.md``.

What one :class:`FaxLab` starts, each as a child process in its own process
group (never Debian's init scripts, which use killall and bind mounts):

- three ``iaxmodem`` soft modems. ``a`` and ``b`` name each other as their IAX2
  peer, so whatever number ``a`` dials, ``b`` rings (and the other way round);
  ``dead``'s peer is a UDP port this lab holds open and never reads, so every
  call from it goes unanswered (a remote fax that does not pick up);
- ``faxq`` and ``hfaxd`` (client protocol on 127.0.0.1, a free TCP port) on a
  private spool in a fresh directory under the system temp folder (not pytest's
  ``tmp_path``: that is mode 0700 and HylaFAX runs as ``uucp``);
- one ``faxgetty`` per modem.

Parallel safety: every name is unique per lab (``ttyIAXr<8 hex><a|b|d>``: the
iaxmodem config ``/etc/iaxmodem/<name>``, the pty link ``/dev/<name>``, the
UUCP lock, the HylaFAX modem config), and the UDP and TCP ports are asked of the
kernel (bind to port 0), so two pytest workers, or two test sessions, can each
run a lab at once. iaxmodem insists on ``/etc/iaxmodem``, so the lab needs
root; :func:`missing_requirements` says what is missing, for a clear skip.

Teardown kills every process group (TERM, then KILL), and removes the files
the lab wrote outside its spool (``/etc/iaxmodem/<name>``, ``/dev/<name>``,
``/var/lock/LCK..<name>``) and the spool itself (kept when ``keep=True``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

IAXMODEM_ETC = Path("/etc/iaxmodem")
SKELETON_SPOOL = Path("/var/spool/hylafax")
SKELETON_ETC = Path("/etc/hylafax")
MODEM_EXAMPLE = Path("/usr/share/doc/iaxmodem/examples/config.ttyIAX")
FAX_USER = "uucp"

# Debian 12 packages that give the programs below.
PACKAGES = {
    "iaxmodem": "iaxmodem",
    "faxq": "hylafax-server",
    "hfaxd": "hylafax-server",
    "faxgetty": "hylafax-server",
}
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")

READY_TEXT = "Running and idle"


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path=os.pathsep.join(SBIN))


def missing_requirements() -> list[str]:
    """What stops a lab from starting here (empty: nothing), for ``pytest.skip``."""
    missing = []
    packages = sorted({pkg for prog, pkg in PACKAGES.items() if _which(prog) is None})
    if packages:
        missing.append("Debian packages not installed: " + ", ".join(packages))
    if not SKELETON_SPOOL.is_dir():
        missing.append(f"no HylaFAX spool skeleton at {SKELETON_SPOOL} (hylafax-server)")
    if not MODEM_EXAMPLE.is_file():
        missing.append(f"no {MODEM_EXAMPLE} (iaxmodem)")
    if os.geteuid() != 0:
        missing.append("not root (iaxmodem reads /etc/iaxmodem, faxgetty owns a tty)")
    try:
        pwd.getpwnam(FAX_USER)
    except KeyError:
        missing.append(f"no {FAX_USER!r} user (HylaFAX's fax user)")
    return missing


def _free_port(kind: int) -> tuple[int, socket.socket]:
    """A port the kernel picked, and the socket still holding it (close it just
    before the daemon binds; iaxmodem listens on 0.0.0.0, so ask on 0.0.0.0)."""
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("0.0.0.0" if kind == socket.SOCK_DGRAM else "127.0.0.1", 0))
    return sock.getsockname()[1], sock


@dataclass
class Modem:
    key: str  # "a", "b", "dead"
    device: str  # tty name without /dev/, also the iaxmodem config name
    port: int  # this modem's UDP port
    peer_port: int
    number: str  # FAXNumber
    ident: str  # LocalIdentifier: sent as TSI/CSI

    @property
    def status_file(self) -> str:
        return f"status/{self.device}"


@dataclass
class FaxLab:
    """One private fax server with modems ``a`` <-> ``b`` and ``dead`` (see the module doc)."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    keep: bool = False
    spool: Path | None = None
    port: int = 0
    modems: dict[str, Modem] = field(default_factory=dict)
    _procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    _holders: list[socket.socket] = field(default_factory=list)
    _written: list[Path] = field(default_factory=list)
    _logs: list = field(default_factory=list)

    # -- set up ---------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> FaxLab:
        try:
            self._prepare()
            self._spawn_all()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        uid = pwd.getpwnam(FAX_USER)
        base = Path(tempfile.mkdtemp(prefix=f"refflow-faxlab-{self.run_id}-"))
        os.chmod(base, 0o755)
        self.spool = base / "spool"
        shutil.copytree(SKELETON_SPOOL, self.spool, symlinks=True)
        shutil.copytree(SKELETON_ETC, self.spool / "etc", symlinks=True, dirs_exist_ok=True)
        (base / "logs").mkdir()

        ports = {}
        for key in ("a", "b", "dead", "void"):
            ports[key], holder = _free_port(socket.SOCK_DGRAM)
            self._holders.append(holder)
        self.port, holder = _free_port(socket.SOCK_STREAM)
        self._holders.append(holder)
        peers = {"a": ports["b"], "b": ports["a"], "dead": ports["void"]}
        for index, key in enumerate(("a", "b", "dead")):
            self.modems[key] = Modem(
                key=key,
                device=f"ttyIAXr{self.run_id}{key[0]}",
                port=ports[key],
                peer_port=peers[key],
                number=f"+1.800.555.01{index}{index}",
                ident=f"REFFLOW LAB {key.upper()}",
            )

        etc = self.spool / "etc"
        (etc / "config").write_text(
            "LogFacility: daemon\n"
            "CountryCode: 1\nAreaCode: 800\nLongDistancePrefix: 1\n"
            "InternationalPrefix: 011\nDialStringRules: etc/dialrules\n"
            "ServerTracing: 1\n"
            "MaxConcurrentCalls: 1\n"
        )
        example = MODEM_EXAMPLE.read_text()
        for modem in self.modems.values():
            text = "\n".join(
                line for line in example.splitlines()
                if line.split(":")[0].strip() not in {
                    "FAXNumber", "LocalIdentifier", "RecvFileMode", "LogFileMode",
                    "SessionTracing", "ServerTracing", "RingsBeforeAnswer"}
            )
            text += (
                f"\nFAXNumber: {modem.number}\n"
                f'LocalIdentifier: "{modem.ident}"\n'
                "RecvFileMode: 0644\nLogFileMode: 0644\n"
                "SessionTracing: 0x4F\nServerTracing: 1\nRingsBeforeAnswer: 1\n"
            )
            (etc / f"config.{modem.device}").write_text(text)
        (etc / "hosts.hfaxd").write_text("127.0.0.1\n")
        os.chmod(etc / "hosts.hfaxd", 0o600)
        os.mkfifo(self.spool / "FIFO", 0o600)
        for path in [self.spool, *self.spool.rglob("*")]:
            if not path.is_symlink():
                os.chown(path, uid.pw_uid, uid.pw_gid)

        IAXMODEM_ETC.mkdir(parents=True, exist_ok=True)
        for modem in self.modems.values():
            config = IAXMODEM_ETC / modem.device
            config.write_text(
                f"device /dev/{modem.device}\nowner {FAX_USER}:{FAX_USER}\nmode 660\n"
                f"port {modem.port}\nrefresh 0\nserver 127.0.0.1:{modem.peer_port}\n"
                f"peername {modem.device}\nsecret password\ncodec slinear\n"
            )
            self._written += [config, Path("/dev") / modem.device,
                              Path("/var/lock") / f"LCK..{modem.device}"]

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.spool.parent / "logs" / f"{name}.log", "wb")  # noqa: SIM115
        self._logs.append(log)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.spool,
        )
        self._procs.append((name, proc))
        return proc

    def _spawn_all(self) -> None:
        spool = str(self.spool)
        # The UDP ports were held until now; release them just before the modems bind.
        void = self._holders[3]  # stays bound: the "dead" modem's silent peer
        for holder in self._holders:
            if holder is not void:
                holder.close()
        self._holders = [void]
        for modem in self.modems.values():
            self._spawn(f"iaxmodem-{modem.key}",
                        [_which("stdbuf") or "stdbuf", "-oL", _which("iaxmodem"), modem.device])
        self._spawn("faxq", [_which("faxq"), "-D", "-q", spool])
        self._spawn("hfaxd", [_which("hfaxd"), "-d", "-q", spool, "-l", "127.0.0.1",
                              "-i", str(self.port)])
        for modem in self.modems.values():
            self._wait_for(Path("/dev") / modem.device, 15.0)
            self._spawn(f"faxgetty-{modem.key}", [_which("faxgetty"), "-q", spool, modem.device])

    def _wait_for(self, path: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"fax lab: {path} did not appear in {timeout:.0f} s")
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for name, proc in self._procs:
            if proc.poll() is not None:
                raise RuntimeError(f"fax lab: {name} exited with {proc.returncode}: "
                                   f"{self.log_tail(name)}")

    def modem_status(self, key: str) -> str:
        path = self.spool / self.modems[key].status_file
        try:
            return path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0, keys=None) -> None:
        """Until every modem's status file says it is running and idle."""
        keys = list(keys or self.modems)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            pending = [k for k in keys if READY_TEXT not in self.modem_status(k)]
            if not pending:
                return
            if time.monotonic() > deadline:
                states = {k: self.modem_status(k) for k in pending}
                raise RuntimeError(f"fax lab: modems not ready after {timeout:.0f} s: {states}")
            time.sleep(0.25)

    # -- helpers for tests ----------------------------------------------------

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.spool.parent / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def diagnostics(self) -> str:
        """Process logs and modem states, for a failing test's message."""
        parts = [f"spool {self.spool}, hfaxd port {self.port}"]
        for key in self.modems:
            parts.append(f"modem {key}: {self.modem_status(key)!r}")
        for name, proc in self._procs:
            parts.append(f"--- {name} (rc {proc.poll()})\n{self.log_tail(name, 8)}")
        return "\n".join(parts)

    # -- tear down ------------------------------------------------------------

    def stop(self) -> None:
        for _name, proc in reversed(self._procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for _name, proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _name, proc in self._procs:
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        for holder in self._holders:
            holder.close()
        self._holders.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        for path in self._written:
            try:
                if path.is_symlink() or path.exists():
                    path.unlink()
            except OSError:
                pass
        self._written.clear()
        if self.spool is not None and not self.keep:
            shutil.rmtree(self.spool.parent, ignore_errors=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # Each child leads its own session (start_new_session), so its pid is the
    # process group id; the group also holds faxq's faxsend and faxgetty's children.
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":  # pragma: no cover - manual use
    problems = missing_requirements()
    if problems:
        sys.exit("; ".join(problems))
    def _interrupt(*_args):
        raise KeyboardInterrupt

    # A background job ignores SIGINT: stop the lab with SIGTERM too.
    signal.signal(signal.SIGTERM, _interrupt)
    lab = FaxLab(keep=True)
    started = time.monotonic()
    lab.start()
    print(f"ready in {time.monotonic() - started:.1f} s: hfaxd 127.0.0.1:{lab.port}, "
          f"spool {lab.spool}")
    for modem in lab.modems.values():
        print(f"  {modem.key}: {modem.device} udp {modem.port} -> {modem.peer_port}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()

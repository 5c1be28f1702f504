"""The local AWS emulator: a moto server on 127.0.0.1 that the project starts itself.

``up`` starts ``python -m moto.server`` in its own session with a pidfile and a log in
the git-ignored ``.local/`` folder, waits until it answers, and switches Lambda to
moto's docker-less mode *before* any function exists (moto reads the setting when a
function is created). ``down`` stops exactly the process the pidfile names, after
checking that it is still our moto server for this port and not a recycled pid.

A server that died (killed, the machine slept) leaves its pidfile behind. ``inspect``
tells the cases apart: the recorded pid is gone, or is now some other process (pids are
recycled), or is our server but not answering. The first two are cleared by ``up``
without asking, so a rerun of ``inv deploy --env local`` starts a fresh server and
converges; a port held by anything else is still refused, naming the holder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.config import EmulatorSettings
from deploy.errors import EmulatorError
from deploy.files import atomic_write_text

#: Set before any function exists: moto would otherwise try to run Lambda code in Docker.
MOTO_CONFIG = {"lambda": {"use_docker": False}}


@dataclass(frozen=True, kw_only=True)
class EmulatorState:
    pid: int
    url: str
    pidfile: Path
    logfile: Path
    reused: bool = False


@dataclass(frozen=True, kw_only=True)
class _PidRecord:
    pid: int
    host: str
    port: int


def pidfile_path(state_dir: Path, settings: EmulatorSettings) -> Path:
    return state_dir / f"moto-{settings.port}.pid"


def logfile_path(state_dir: Path, settings: EmulatorSettings) -> Path:
    return state_dir / f"moto-{settings.port}.log"


def _http(url: str, *, data: bytes | None = None, timeout: float = 2.0) -> Any:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")  # noqa: S310
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback URL we built
        return json.loads(resp.read() or b"null")


def is_moto(url: str, *, timeout: float = 2.0) -> bool:
    """True when ``url`` answers moto's config API (so it is a moto server, not just any listener)."""
    try:
        data = _http(f"{url}/moto-api/config", timeout=timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return isinstance(data, dict) and "lambda" in data


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for throwaway emulators in tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    """Running, not a zombie: a killed server stays in the process table until its parent (often init,
    some moments later) reaps it, and must read as gone, not as someone else's process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # without /proc (macOS) a signal-able pid is the best check we have
    return state != "Z"


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _cmdline(pid: int) -> str:
    return " ".join(_argv(pid))


def _serves_port(argv: list[str], port: int) -> bool:
    """``… -m moto.server -H HOST -p PORT`` (how ``up`` starts it), for this port."""
    if "moto.server" not in argv:
        return False
    return any(flag in ("-p", "--port") and value == str(port) for flag, value in itertools.pairwise(argv))


def _is_our_process(pid: int, port: int) -> bool:
    """The pid is alive and is a moto server started for ``port`` (not a recycled pid, not
    another port's server: ``down`` must never stop someone else's process)."""
    if not _pid_alive(pid):
        return False
    if not Path("/proc").is_dir():
        return True  # without /proc (macOS) a live pid is the best check we have
    return _serves_port(_argv(pid), port)


def port_holder(port: int) -> str | None:
    """``pid N (command line)`` of the process listening on ``port``, from /proc (Linux); None
    when it cannot be told (no /proc, or the socket belongs to another user's process)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # local address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the socket inode.
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc_dir / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) in inodes:
                        pid = int(proc_dir.name)
                        return f"pid {pid} ({_cmdline(pid)[:120]})"
    return None


@dataclass(frozen=True, kw_only=True)
class Found:
    """What ``inspect`` found for one port: ``state`` is one of

    - ``none``: no pidfile;
    - ``running``: our server, answering;
    - ``starting``: our server (pid, command line and port match) not answering yet, or hung;
    - ``gone``: the recorded pid no longer exists (killed, rebooted, slept);
    - ``foreign``: the recorded pid is alive but is not our moto server for this port.
    """

    state: str
    pidfile: Path
    record: _PidRecord | None = None

    def describe(self, url: str) -> str:
        pid = self.record.pid if self.record else None
        if self.state == "running":
            return f"running: pid {pid} on {url}"
        if self.state == "none":
            return f"not running (no pidfile at {self.pidfile})"
        if self.state == "gone":
            return f"stale pidfile {self.pidfile}: pid {pid} is gone (the server was killed or the machine restarted)"
        if self.state == "foreign":
            what = _cmdline(pid) if pid else ""
            return f"stale pidfile {self.pidfile}: pid {pid} is not our moto server for this port" + (
                f" (it is now: {what[:120]})" if what else ""
            )
        return f"pid {pid} is our moto server but it does not answer on {url}"


def inspect(settings: EmulatorSettings, state_dir: Path) -> Found:
    """What the pidfile of ``settings.port`` points at (reads only)."""
    pidfile = pidfile_path(state_dir, settings)
    record = _read_pidfile(pidfile)
    if record is None:
        return Found(state="none", pidfile=pidfile)
    if not _pid_alive(record.pid):
        return Found(state="gone", pidfile=pidfile, record=record)
    if not _is_our_process(record.pid, settings.port):
        return Found(state="foreign", pidfile=pidfile, record=record)
    if is_moto(settings.url):
        return Found(state="running", pidfile=pidfile, record=record)
    return Found(state="starting", pidfile=pidfile, record=record)


def _read_pidfile(path: Path) -> _PidRecord | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return _PidRecord(pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise EmulatorError(
            f"pidfile {path} is unreadable", hint="delete it (`inv local.down` does) and run `inv local.up` again"
        ) from None


def _write_pidfile(path: Path, record: _PidRecord) -> None:
    atomic_write_text(path, json.dumps({"pid": record.pid, "host": record.host, "port": record.port}) + "\n")


def configure(url: str) -> None:
    """Apply ``MOTO_CONFIG`` (idempotent, so a reused server is configured too)."""
    try:
        _http(f"{url}/moto-api/config", data=json.dumps(MOTO_CONFIG).encode())
    except (OSError, ValueError) as exc:
        raise EmulatorError(f"could not configure the moto server at {url}: {exc}") from None


def _wait_answering(url: str, pid: int, timeout: float, clock: Callable[[], float]) -> bool:
    deadline = clock() + timeout
    while _pid_alive(pid):
        if is_moto(url, timeout=1.0):
            return True
        if clock() > deadline:
            return False
        time.sleep(0.1)  # polling another process's readiness, not timing a test
    return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def up(
    settings: EmulatorSettings,
    state_dir: Path,
    *,
    timeout: float = 30.0,
    python: str = sys.executable,
    clock: Callable[[], float] = time.monotonic,
    notify: Callable[[str], None] | None = None,
) -> EmulatorState:
    """Start the emulator, or reuse ours if it is already healthy; a dead server's pidfile
    is cleared (``notify`` says so) and a fresh one started."""
    state_dir.mkdir(parents=True, exist_ok=True)
    pidfile = pidfile_path(state_dir, settings)
    logfile = logfile_path(state_dir, settings)
    found = inspect(settings, state_dir)
    if found.state == "running" and found.record is not None:
        configure(settings.url)
        return EmulatorState(pid=found.record.pid, url=settings.url, pidfile=pidfile, logfile=logfile, reused=True)
    if found.state == "starting" and found.record is not None:
        # Ours (pid, command line and port match): another `up` may be starting it right now.
        if _wait_answering(settings.url, found.record.pid, timeout, clock):
            configure(settings.url)
            return EmulatorState(pid=found.record.pid, url=settings.url, pidfile=pidfile, logfile=logfile, reused=True)
        raise EmulatorError(
            f"{found.describe(settings.url)} within {timeout:.0f} s",
            hint=f"`inv local.down` stops it; log ({logfile}):\n{_log_tail(logfile)}",
        )
    if found.state in ("gone", "foreign"):
        # A dead server's leftovers: nothing of ours runs, so a fresh start is what a rerun promised.
        pidfile.unlink(missing_ok=True)
        if notify is not None:
            notify(f"cleared {found.describe(settings.url)}")
    if port_open(settings.host, settings.port):
        what = "another moto server (not started by this project)" if is_moto(settings.url) else "another process"
        holder = port_holder(settings.port)
        raise EmulatorError(
            f"port {settings.port} on {settings.host} is already in use by {what}" + (f": {holder}" if holder else ""),
            hint="stop it, or choose a free port with deploy.environments.local.emulator.port in invoke.yaml "
            "(or INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_EMULATOR_PORT)",
        )
    if python == sys.executable and importlib.util.find_spec("moto") is None:
        # moto is the `local` extra: the deploy job, which holds real credentials, never installs it.
        raise EmulatorError(
            "the local emulator needs moto, which is not installed",
            hint="pip install -e '.[local]' (the README's first command)",
        )
    with logfile.open("ab") as log:
        proc = subprocess.Popen(
            [python, "-m", "moto.server", "-H", settings.host, "-p", str(settings.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the task's process group; `down` stops it
        )
    # Recorded at once, so an interrupted start leaves a pidfile `down` can act on, never an orphan.
    _write_pidfile(pidfile, _PidRecord(pid=proc.pid, host=settings.host, port=settings.port))
    try:
        deadline = clock() + timeout
        # Ready means *our* child answers: it must still be running (a concurrent `up` that won
        # the port would answer too, while our child died on the bind).
        while not (is_moto(settings.url, timeout=1.0) and proc.poll() is None):
            if proc.poll() is not None:
                raise EmulatorError(
                    f"moto server exited with code {proc.returncode} before answering on {settings.url}",
                    hint=f"log ({logfile}):\n{_log_tail(logfile)}",
                )
            if clock() > deadline:
                raise EmulatorError(
                    f"moto server did not answer on {settings.url} within {timeout:.0f} s",
                    hint=f"log ({logfile}):\n{_log_tail(logfile)}",
                )
            time.sleep(0.1)  # polling a child process's readiness, not timing a test
        configure(settings.url)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        pidfile.unlink(missing_ok=True)
        raise
    return EmulatorState(pid=proc.pid, url=settings.url, pidfile=pidfile, logfile=logfile)


def down(settings: EmulatorSettings, state_dir: Path, *, timeout: float = 10.0) -> str:
    """Stop the server our pidfile names; returns what happened, for the task to print."""
    pidfile = pidfile_path(state_dir, settings)
    try:
        record = _read_pidfile(pidfile)
    except EmulatorError:
        pidfile.unlink(missing_ok=True)
        return f"removed unreadable pidfile {pidfile}"
    if record is None:
        return f"no emulator running for port {settings.port} (no pidfile at {pidfile})"
    if not _is_our_process(record.pid, settings.port):
        pidfile.unlink(missing_ok=True)
        return (
            f"removed stale pidfile {pidfile} (pid {record.pid} was not a running moto server for port {settings.port})"
        )
    os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(record.pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)
        time.sleep(0.05)
    if _pid_alive(record.pid):
        os.killpg(record.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(record.pid, os.WNOHANG)
    pidfile.unlink(missing_ok=True)
    return f"stopped moto server pid {record.pid} on {settings.url}"


def status(settings: EmulatorSettings, state_dir: Path) -> str:
    """Which state ``inspect`` found, in words (reads only; ``up`` clears a stale pidfile)."""
    found = inspect(settings, state_dir)
    text = found.describe(settings.url)
    if found.state in ("gone", "foreign"):
        text += "; `inv local.up` or `inv deploy --env local` clears it and starts a fresh server"
    if found.state in ("none", "gone", "foreign"):
        holder = port_holder(settings.port)
        if holder is None and port_open(settings.host, settings.port):
            holder = "another process"
        if holder is not None:
            text += f"; port {settings.port} is held by {holder}"
    return text


def assert_reachable(url: str) -> None:
    """Clear error when the emulator died mid-deploy (rather than a botocore stack trace)."""
    if not is_moto(url):
        raise EmulatorError(
            f"the local emulator at {url} is not answering",
            hint="run `inv local.up` (or rerun `inv deploy --env local`, which starts it) — a rerun converges",
        )

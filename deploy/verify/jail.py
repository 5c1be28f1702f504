"""How the sandbox process is isolated from the machine: bubblewrap's allow-list jail, or the fallback.

A scrubbed environment and a scratch ``HOME`` (``deploy.verify.isolation``) do not stop code running
as the deployer's user from reading ``/proc/<parent>/environ`` (in CI: the deploy role's keys and the
OIDC request token), the real home (``~/.aws/credentials``, ``~/.netrc``), a host socket (on CI the
Docker socket in ``/run``: a read-only bind of a socket stays connectable) or the instance metadata
address. So the jail is an allow-list: bubblewrap starts from an empty root and binds read-only only
what the run needs (the interpreter's prefix and the libraries it maps, the system's library dirs
and TLS roots, the runner, the extracted trees), an empty ``/dev`` with null, zero and urandom, a
fresh ``/proc`` in its own PID namespace and an empty ``/tmp``; the run's scratch folder is the only
writable path. It also gets its own network namespace (loopback only: the metadata address is
unreachable); the local emulator on the host's loopback is relayed into it (``deploy.verify.relay``).

Without a usable bubblewrap, an emulator environment (dummy credentials, nothing real to steal in
the account it talks to) falls back to the strongest isolation the kernel allows without it:
``unshare``'s user, PID, IPC, UTS and mount namespaces (no other process and no other process's
environment is visible) around the same allow-listed environment; the host's files stay visible.
Elsewhere no jail means no run, unless the settings say ``verify.isolation: none``.
:func:`decide_isolation` makes that call once; the preflight and every sandbox run read it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deploy.config import EnvConfig
from deploy.errors import VerifyError

BWRAP = "bwrap"
UNSHARE = "unshare"
Probe = Callable[[], str | None]

#: Every run's namespaces and hardening; ``--unshare-net`` is added unless the jail must share the network.
BWRAP_FLAGS = (
    "--die-with-parent",
    "--new-session",  # no TIOCSTI into the deployer's terminal
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup",
    "--cap-drop",
    "ALL",
)
#: The only device nodes in the jail's /dev (no tty, no pts, no shm: Lambda has no /dev/shm either).
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
#: What the probe runs: every namespace and mount kind the jail uses, around an empty Python.
PROBE_ARGS = (
    *BWRAP_FLAGS,
    "--unshare-net",
    "--ro-bind",
    "/",
    "/",
    "--dev-bind",
    "/dev/null",
    "/dev/null",
    "--proc",
    "/proc",
)
#: The fallback's namespaces. Inside, the process is uid 65534, not root: mapped root would keep
#: CAP_SYS_ADMIN in its namespaces and could unmount its fresh /proc, which uncovers the host's
#: (every process and, for the same user, its environment). Files are still read as the deployer.
UNSHARE_ARGS = (
    "--user",
    "--map-user=65534",
    "--map-group=65534",
    "--pid",
    "--kill-child",
    "--mount-proc",
    "--ipc",
    "--uts",
)

#: Bound read-only when they exist (a distribution without /lib64 simply has none): the dynamic loader
#: and the libraries the interpreter and wheels link, the loader's cache, the TLS roots (Debian, RHEL,
#: Alpine), and what Lambda's runtime also has: name resolution files and the time zone database.
SYSTEM_PATHS = tuple(
    Path(p)
    for p in (
        "/lib",
        "/lib64",
        "/lib32",
        "/libx32",
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib32",
        "/usr/libx32",
        "/usr/local/lib",
        "/etc/ld.so.cache",
        "/etc/ssl/certs",
        "/etc/ssl/cert.pem",
        "/etc/ssl/openssl.cnf",
        "/etc/pki/tls/certs",
        "/etc/pki/ca-trust/extracted",
        "/usr/share/ca-certificates",
        "/etc/hosts",
        "/etc/nsswitch.conf",
        "/etc/resolv.conf",
        "/usr/share/zoneinfo",
    )
)

_INSTALL_FIX = (
    "install the `bubblewrap` package (e.g. `apt-get install -y bubblewrap`); on Ubuntu 23.10+ unprivileged "
    "user namespaces must be allowed (sysctl kernel.apparmor_restrict_unprivileged_userns=0); on a machine "
    "without bwrap (macOS) set `verify.isolation: none` in invoke.yaml, accepting that the sandbox can read "
    "the deployer's credentials"
)


@dataclass(frozen=True, kw_only=True)
class IsolationDecision:
    """What isolation sandbox runs get in one environment, decided once (preflight and runs read it)."""

    mode: Literal["bwrap", "fallback", "none"]
    ok: bool  # False: no sandbox run may start in this environment
    detail: str  # one line: what isolation the run gets, or why it cannot run
    fix: str | None  # the fix when not ok (e.g. apt-get install -y bubblewrap)
    #: The wrapper to start: bwrap (mode bwrap) or unshare (fallback with namespaces); None: none.
    command: str | None = None


def _run_probe(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{Path(argv[0]).name} could not run: {exc}"
    if proc.returncode != 0:
        words = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{Path(argv[0]).name} failed: {words[-1] if words else f'exit {proc.returncode}'}"
    return None


@functools.cache
def _probe_at(tool: str, path: str | None) -> str | None:
    """Run once per binary and process: a deploy asks in its preflight and again in each verify."""
    if path is None:
        return f"{tool} is not installed (not on PATH)"
    # The interpreter running this: a command that exists whatever PATH holds.
    return _run_probe([path, *(PROBE_ARGS if tool == BWRAP else UNSHARE_ARGS), sys.executable, "-c", ""])


def bwrap_problem() -> str | None:
    """None when the bwrap on PATH can build the jail here, else why not (bwrap's own words)."""
    return _probe_at(BWRAP, shutil.which(BWRAP))


def unshare_problem() -> str | None:
    """None when util-linux's unshare can give the fallback its namespaces here, else why not."""
    return _probe_at(UNSHARE, shutil.which(UNSHARE))


def decide_isolation(
    *,
    setting: str,
    emulator: bool,
    probe: Probe = bwrap_problem,
    namespaces: Probe = unshare_problem,
) -> IsolationDecision:
    """``setting`` is ``verify.isolation``; ``emulator``: the environment talks to an emulator (dummy keys)."""
    if setting == "none":
        return IsolationDecision(
            mode="none",
            ok=True,
            detail="warning: verify.isolation is none: the code under verify runs unjailed and can read the "
            "deployer's credentials (other processes' environments, the real home, the metadata service)",
            fix=None,
        )
    problem = probe()
    if problem is None:
        return IsolationDecision(
            mode="bwrap",
            ok=True,
            detail="verify sandbox: bubblewrap jail (allow-listed binds, own PID/IPC/UTS/cgroup namespaces"
            + (", own network with the emulator relayed in)" if emulator else ", no network)"),
            fix=None,
            command=shutil.which(BWRAP) or BWRAP,
        )
    if not emulator:
        return IsolationDecision(
            mode="bwrap",
            ok=False,
            detail=f"verify runs the layer's and handlers' code inside bubblewrap, and {problem}",
            fix=_INSTALL_FIX,
        )
    missing = namespaces()
    if missing is None:
        return IsolationDecision(
            mode="fallback",
            ok=True,
            detail=f"verify sandbox without bubblewrap ({problem}): emulator environment, so it runs in its own "
            "user/PID/IPC/UTS/mount namespaces (unshare) with an allow-listed environment and a scratch HOME; "
            "host files and network stay visible",
            fix=None,
            command=shutil.which(UNSHARE) or UNSHARE,
        )
    return IsolationDecision(
        mode="fallback",
        ok=True,
        detail=f"verify sandbox without bubblewrap ({problem}) or namespaces ({missing}): emulator environment, "
        "so it runs with only an allow-listed environment and a scratch HOME",
        fix=None,
    )


_ANNOUNCED: set[str] = set()


def announce(detail: str) -> None:
    """Say a weaker-than-usual isolation once per process: the preflight says it before anything runs,
    and the local and the deployed verify would each say it again."""
    if detail not in _ANNOUNCED:
        _ANNOUNCED.add(detail)
        sys.stderr.write(detail + "\n")


def isolation_for(env: EnvConfig) -> IsolationDecision:
    """The decision for one environment: an emulator environment is one with an ``emulator`` section (local)."""
    return decide_isolation(setting=env.verify.isolation, emulator=env.is_local)


def require_isolation(decision: IsolationDecision) -> None:
    """Stop before running anything when no sandbox run may start: never a silent unjailed run."""
    if not decision.ok:
        raise VerifyError(decision.detail, hint=decision.fix)


# ---------------------------------------------------------------------------
# The bubblewrap jail

# Importing the extension modules that link system libraries maps those libraries, so /proc/self/maps
# names every shared object the interpreter can need, wherever the build found it (pyenv, Nix, a
# Homebrew openssl).
_LINKED = (
    "import json, sys\n"
    "for m in ('ssl', 'sqlite3', 'ctypes', 'zlib', 'bz2', 'lzma', 'uuid', 'decimal', 'hashlib', 'pyexpat'):\n"
    "    try:\n"
    "        __import__(m)\n"
    "    except Exception:\n"
    "        pass\n"
    "with open('/proc/self/maps') as fh:\n"
    "    maps = sorted({l.split(None, 5)[5].strip() for l in fh if len(l.split(None, 5)) == 6})\n"
    "print(json.dumps({'prefixes': [sys.base_prefix, sys.base_exec_prefix], 'maps': maps}))\n"
)


@functools.cache
def interpreter_paths(python: Path) -> tuple[Path, ...]:
    """The interpreter's prefix(es) and the folders of the libraries it maps (asked once per interpreter)."""
    try:
        proc = subprocess.run(
            [str(python), "-I", "-S", "-c", _LINKED], capture_output=True, text=True, timeout=60, check=False
        )
        found = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        found = None
    if not isinstance(found, dict):
        raise VerifyError(f"could not ask {python} which files it needs, so the jail cannot bind them")
    prefixes = {Path(p) for p in found["prefixes"]}
    if Path("/") in prefixes:
        raise VerifyError(f"{python}'s prefix is /: binding it would show the jail the whole machine")
    mapped = [Path(p) for p in found["maps"] if p.startswith("/") and Path(p).is_file()]
    libraries = {p if p.parent == Path("/") else p.parent for p in mapped}
    return tuple(sorted(prefixes | libraries))


@dataclass(frozen=True, kw_only=True)
class Jail:
    """One sandbox run's view of the machine: nothing but these paths (and /dev's three devices, /proc, /tmp)."""

    #: Bound read-only: the system's (``SYSTEM_PATHS``, ``interpreter_paths``) and the run's own trees.
    read_only: tuple[Path, ...]
    #: Bound read-write: the run's scratch folder only.
    read_write: tuple[Path, ...]
    #: (host file, path in the jail), read-only: the jail's own /etc/passwd and /etc/group.
    files: tuple[tuple[Path, Path], ...] = ()
    #: Only for an emulator (dummy credentials) the relay cannot bring in: one not on the host's loopback.
    share_network: bool


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """Sorted, without duplicates or paths inside another one (that bind already shows them)."""
    out: list[Path] = []
    for path in sorted(set(paths)):
        if not any(path.is_relative_to(kept) for kept in out):
            out.append(path)
    return out


def argv_prefix(jail: Jail, *, bwrap: str = BWRAP) -> list[str]:
    """The ``bwrap`` arguments that run the following command inside ``jail``.

    bwrap's root is an empty tmpfs; mounts apply in order, so ``/tmp`` comes before the binds under it.
    A path missing on this host is skipped. A link among the read-only paths (``/lib -> usr/lib`` on a
    merged-/usr system) is recreated as the same link when its target is bound too, else its target's
    content is bound at its place.
    """
    argv = [bwrap, *BWRAP_FLAGS]
    if not jail.share_network:
        argv.append("--unshare-net")
    argv += ["--tmpfs", "/tmp"]  # noqa: S108 - an empty tmpfs in the jail, not the host's /tmp
    present = [p for p in jail.read_only if p.exists()]
    folders = [p for p in present if not p.is_symlink()]
    links = [p for p in present if p.is_symlink() and any(p.resolve().is_relative_to(f) for f in folders)]
    for link in sorted(set(links)):
        argv += ["--symlink", str(link.readlink()), str(link)]
    for path in _outermost(p for p in present if p not in links):
        argv += ["--ro-bind", str(path), str(path)]
    for source, target in jail.files:
        argv += ["--ro-bind", str(source), str(target)]
    for path in _outermost(p for p in jail.read_write if p.exists()):
        argv += ["--bind", str(path), str(path)]
    for device in DEVICES:
        argv += ["--dev-bind", device, device]
    argv += ["--proc", "/proc", "--"]
    return argv


def fallback_argv(*, unshare: str = UNSHARE, share_network: bool) -> list[str]:
    """The ``unshare`` arguments that run the following command in the fallback's namespaces."""
    return [unshare, *UNSHARE_ARGS, *(() if share_network else ("--net",)), "--"]


def account_files(folder: Path) -> tuple[tuple[Path, Path], ...]:
    """An /etc/passwd and /etc/group naming only the sandbox's user, as Lambda's runtime has one.

    Code that looks its user up (``getpass``, ``pwd``) works; the host's users and homes stay unnamed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    uid, gid = os.getuid(), os.getgid()
    (folder / "passwd").write_text(f"sbx_user:x:{uid}:{gid}:sandbox:/nonexistent:/sbin/nologin\n")
    (folder / "group").write_text(f"sbx_user:x:{gid}:\n")
    return ((folder / "passwd", Path("/etc/passwd")), (folder / "group", Path("/etc/group")))

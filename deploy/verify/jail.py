"""The sandbox process runs inside bubblewrap (``bwrap``): what an allow-listed environment cannot hide.

A scrubbed environment and a scratch ``HOME`` (``deploy.verify.isolation``) do not stop code running
as the deployer's user from reading ``/proc/<parent>/environ`` (in CI: the deploy role's keys and the
OIDC request token), the real home found through ``pwd`` (``~/.aws/credentials``, ``~/.netrc``), or
the instance metadata address. The jail gives the process its own PID namespace (no other process is
visible), a read-only view of ``/`` with empty tmpfs over the real home, ``$HOME`` and ``/tmp``, and
re-binds only the paths the run needs; outside the local environment it also gets its own network
namespace (loopback only: the metadata address is unreachable).
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import VerifyError

BWRAP = "bwrap"
#: What the probe runs: the namespaces and mounts the jail needs, nothing else.
PROBE_ARGV = (BWRAP, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true")


@dataclass(frozen=True, kw_only=True)
class Jail:
    """One sandbox run's view of the machine."""

    #: Folders replaced by an empty tmpfs (the real home, ``$HOME``); ``/tmp`` always is.
    hidden: tuple[Path, ...]
    #: Re-bound read-only over the tmpfs: the interpreter's prefix, the runner, the extracted trees.
    read_only: tuple[Path, ...]
    #: Re-bound read-write: the run's scratch folder only.
    read_write: tuple[Path, ...]
    #: Only for an environment with an emulator on the host's loopback (with dummy credentials).
    share_network: bool


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """Sorted, without duplicates or paths inside another one (a tmpfs already hides those)."""
    out: list[Path] = []
    for path in sorted(set(paths)):
        if not any(path.is_relative_to(kept) for kept in out):
            out.append(path)
    return out


def argv_prefix(jail: Jail) -> list[str]:
    """The ``bwrap`` arguments that run the following command inside ``jail``.

    Mounts apply in order and a later one wins: the tmpfs come first, then the read-only re-binds
    (parents before children), then the read-write ones.
    """
    argv = [BWRAP, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if not jail.share_network:
        argv.append("--unshare-net")
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    # An empty tmpfs hides the host's /tmp (other processes' files); nothing is written to the host's.
    for path in _outermost([*jail.hidden, Path("/tmp")]):  # noqa: S108
        argv += ["--tmpfs", str(path)]
    for path in sorted(set(jail.read_only)):
        argv += ["--ro-bind", str(path), str(path)]
    for path in sorted(set(jail.read_write)):
        argv += ["--bind", str(path), str(path)]
    argv.append("--")
    return argv


def homes(environ_home: str | None) -> tuple[Path, ...]:
    """The deployer's home as ``pwd`` knows it, and ``$HOME`` when it differs (and is not ``/``)."""
    found = {Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()}
    if environ_home:
        found.add(Path(environ_home).resolve())
    return tuple(sorted(p for p in found if p != Path("/") and p.is_dir()))


def _bwrap_works() -> str | None:
    """None when bwrap can build the jail here, else why not (bwrap's own words)."""
    if shutil.which(BWRAP) is None:
        return "bwrap is not installed"
    try:
        proc = subprocess.run(PROBE_ARGV, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not run: {exc}"
    if proc.returncode != 0:
        return f"bwrap failed: {proc.stderr.decode('utf-8', 'replace').strip() or f'exit {proc.returncode}'}"
    return None


@functools.cache
def _cached_probe() -> str | None:
    return _bwrap_works()


def require_bwrap(probe: Callable[[], str | None] = _cached_probe) -> None:
    """Stop before running anything when the jail cannot be built: never a silent unjailed run.

    The probe runs once per process (cached); tests inject their own.
    """
    problem = probe()
    if problem is None:
        return
    raise VerifyError(
        f"verify runs the layer's and handlers' code inside bubblewrap, and {problem}",
        hint="install the `bubblewrap` package (e.g. `apt-get install -y bubblewrap`); on Ubuntu 23.10+ unprivileged "
        "user namespaces must be allowed (sysctl kernel.apparmor_restrict_unprivileged_userns=0); on a machine "
        "without bwrap (macOS) set `verify.isolation: none` in invoke.yaml, accepting that the sandbox can read "
        "the deployer's credentials",
    )

"""The bubblewrap jail around the sandbox: what the argv hides and re-binds, and a clear stop without bwrap."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import pytest

from deploy import verify
from deploy.config import EnvConfig, FunctionTarget, SmokeCase, VerifySettings
from deploy.errors import VerifyError
from deploy.verify import jail, sandbox
from tests.unit.test_verify import HOST_ARCH, zip_artifact


def _spec(*, share_network: bool) -> jail.Jail:
    return jail.Jail(
        hidden=(Path("/home/me"), Path("/home/me/.cache"), Path("/srv/ci-home")),
        read_only=(Path("/home/me/.pyenv/versions/3.12.1"), Path("/tmp/verify-x/task"), Path("/tmp/verify-x/opt")),
        read_write=(Path("/tmp/verify-x/run/api"),),
        share_network=share_network,
    )


def _mounts(argv: list[str]) -> list[tuple[str, ...]]:
    """(option, path…) in order, for the mount options only."""
    out: list[tuple[str, ...]] = []
    words = iter(argv)
    for word in words:
        if word in ("--ro-bind", "--bind"):
            out.append((word, next(words), next(words)))
        elif word in ("--tmpfs", "--dev", "--proc"):
            out.append((word, next(words)))
    return out


def test_argv_hides_homes_and_tmp_then_rebinds_what_the_run_needs() -> None:
    argv = jail.argv_prefix(_spec(share_network=False))
    assert argv[0] == "bwrap" and argv[-1] == "--"
    for flag in ("--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"):
        assert flag in argv
    assert _mounts(argv) == [
        ("--ro-bind", "/", "/"),
        ("--dev", "/dev"),
        ("--proc", "/proc"),
        # the home's own subfolder needs no second tmpfs; $HOME elsewhere gets its own
        ("--tmpfs", "/home/me"),
        ("--tmpfs", "/srv/ci-home"),
        ("--tmpfs", "/tmp"),
        # later mounts win: the re-binds come after every tmpfs, the writable scratch last
        ("--ro-bind", "/home/me/.pyenv/versions/3.12.1", "/home/me/.pyenv/versions/3.12.1"),
        ("--ro-bind", "/tmp/verify-x/opt", "/tmp/verify-x/opt"),
        ("--ro-bind", "/tmp/verify-x/task", "/tmp/verify-x/task"),
        ("--bind", "/tmp/verify-x/run/api", "/tmp/verify-x/run/api"),
    ]


def test_network_is_shared_only_with_an_emulator() -> None:
    assert "--unshare-net" not in jail.argv_prefix(_spec(share_network=True))
    assert "--unshare-net" in jail.argv_prefix(_spec(share_network=False))


def test_homes_are_the_pwd_home_and_a_different_home_variable(tmp_path: Path) -> None:
    real = Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
    assert jail.homes(str(tmp_path)) == tuple(sorted({real, tmp_path.resolve()}))
    assert jail.homes(None) == (real,)
    assert jail.homes("/") == (real,)  # never a tmpfs over /


def test_missing_bwrap_is_a_clear_error_naming_the_package_and_the_opt_out() -> None:
    with pytest.raises(VerifyError) as info:
        jail.require_bwrap(probe=lambda: "bwrap is not installed")
    assert "bwrap is not installed" in info.value.message
    assert "bubblewrap" in (info.value.hint or "")
    assert "verify.isolation: none" in (info.value.hint or "")
    jail.require_bwrap(probe=lambda: None)  # a working bwrap: nothing to say


def _verify(tmp_path: Path, isolation: str, python: Path | None = None) -> verify.VerifyReport:
    handler = "def handler(event, context):\n    return {'ok': True}\n"
    env = EnvConfig(
        name="staging",
        region="us-east-1",
        architecture=HOST_ARCH,
        verify=VerifySettings(
            smoke={"ok": (SmokeCase(name="answer", event={}, expect={"equals": {"ok": True}}),)},
            isolation=isolation,  # type: ignore[arg-type]
        ),
    )
    return verify.verify_local(
        env,
        [FunctionTarget(key="ok", name="acme-ok", handler="h.handler")],
        layer=zip_artifact(tmp_path / "layer.zip", {"python/dep.py": "X = 1\n"}, "layer"),
        function=zip_artifact(tmp_path / "function.zip", {"h.py": handler}, "function"),
        python=python or verify.find_runtime_python("3.12"),
    )


def test_an_interpreter_linked_from_a_hidden_folder_still_runs(tmp_path: Path) -> None:
    """A venv's python3.12 is a link, and CI's venvs live in the checkout under /tmp or the home, which
    the jail hides: the sandbox must start the real binary (seen: every handler "exited with 1")."""
    link = tmp_path / "venv" / "bin" / "python3.12"
    link.parent.mkdir(parents=True)
    link.symlink_to(verify.find_runtime_python("3.12").resolve())
    assert str(link).startswith(tempfile.gettempdir())  # under /tmp: hidden by the jail's tmpfs
    report = _verify(tmp_path, "bwrap", python=link)
    assert report.ok, report.problems()


def test_without_bwrap_verify_stops_before_running_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "require_bwrap", lambda: jail.require_bwrap(probe=lambda: "bwrap is not installed"))
    with pytest.raises(VerifyError, match="bwrap is not installed"):
        _verify(tmp_path, "bwrap")


def test_isolation_none_runs_unjailed_and_says_so_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _verify(tmp_path, "none").ok
    err = capsys.readouterr().err
    assert err.count("verify.isolation is none") == 1
    assert "can read the deployer's credentials" in err

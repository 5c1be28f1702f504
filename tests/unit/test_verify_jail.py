"""The isolation decision (bwrap, the emulator's fallback, none) and the allow-list jail's argv."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from deploy import verify
from deploy.config import EmulatorSettings, EnvConfig, FunctionTarget, SmokeCase, VerifySettings
from deploy.errors import VerifyError
from deploy.verify import jail
from tests.unit.test_verify import HOST_ARCH, zip_artifact

DENIED = "bwrap: setting up uid map: Permission denied"


def works() -> str | None:
    return None


def test_a_working_bwrap_jails_every_environment() -> None:
    for emulator in (True, False):
        decision = jail.decide_isolation(setting="bwrap", emulator=emulator, probe=works)
        assert (decision.mode, decision.ok, decision.fix) == ("bwrap", True, None)
        assert decision.command is not None and Path(decision.command).name == "bwrap"
        assert "\n" not in decision.detail


def test_without_bwrap_an_aws_environment_refuses_with_bwraps_words_and_the_fix() -> None:
    decision = jail.decide_isolation(setting="bwrap", emulator=False, probe=lambda: f"bwrap failed: {DENIED}")
    assert (decision.mode, decision.ok, decision.command) == ("bwrap", False, None)
    assert DENIED in decision.detail and "\n" not in decision.detail
    assert decision.fix is not None
    assert "apt-get install -y bubblewrap" in decision.fix and "verify.isolation: none" in decision.fix
    with pytest.raises(VerifyError) as info:
        jail.require_isolation(decision)
    assert DENIED in info.value.message and info.value.hint == decision.fix


def test_without_bwrap_an_emulator_environment_falls_back_to_namespaces_and_says_so() -> None:
    decision = jail.decide_isolation(
        setting="bwrap", emulator=True, probe=lambda: "bwrap is not installed", namespaces=works
    )
    assert (decision.mode, decision.ok, decision.fix) == ("fallback", True, None)
    assert decision.command is not None and Path(decision.command).name == "unshare"
    assert "bwrap is not installed" in decision.detail and "namespaces" in decision.detail
    assert "\n" not in decision.detail
    jail.require_isolation(decision)  # may run


def test_without_namespaces_either_the_fallback_says_what_is_left() -> None:
    decision = jail.decide_isolation(
        setting="bwrap",
        emulator=True,
        probe=lambda: "bwrap is not installed",
        namespaces=lambda: "unshare failed: unshare: unshare failed: Operation not permitted",
    )
    assert (decision.mode, decision.ok, decision.command) == ("fallback", True, None)
    assert "Operation not permitted" in decision.detail
    assert "only an allow-listed environment and a scratch HOME" in decision.detail


def test_isolation_none_is_decided_without_probing() -> None:
    def never() -> str | None:
        raise AssertionError("isolation none must not probe")

    for emulator in (True, False):
        decision = jail.decide_isolation(setting="none", emulator=emulator, probe=never, namespaces=never)
        assert (decision.mode, decision.ok, decision.command) == ("none", True, None)
        assert "can read the deployer's credentials" in decision.detail


def _fake_tool(folder: Path, name: str, stderr: str, code: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_the_probe_reports_bwraps_own_words_when_user_namespaces_are_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bwrap that exists but cannot build the jail (Ubuntu's AppArmor userns restriction)."""
    _fake_tool(tmp_path / "bin", "bwrap", DENIED, 1)
    _fake_tool(tmp_path / "bin", "unshare", "unshare: unshare failed: Operation not permitted", 1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert jail.bwrap_problem() == f"bwrap failed: {DENIED}"
    local = jail.decide_isolation(setting="bwrap", emulator=True)
    assert (local.mode, local.ok, local.command) == ("fallback", True, None)
    assert DENIED in local.detail and "Operation not permitted" in local.detail
    staging = jail.decide_isolation(setting="bwrap", emulator=False)
    assert not staging.ok and DENIED in staging.detail


def test_a_path_without_bwrap_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert jail.bwrap_problem() == "bwrap is not installed (not on PATH)"
    assert jail.unshare_problem() == "unshare is not installed (not on PATH)"


def test_the_real_probes_agree_with_this_machine() -> None:
    """CI installs bubblewrap: the probe must find it working, and the decision must jail."""
    assert shutil.which("bwrap") is not None, "install bubblewrap to run these tests (see .ci/run)"
    assert jail.bwrap_problem() is None
    assert jail.decide_isolation(setting="bwrap", emulator=False).mode == "bwrap"


# ---------------------------------------------------------------------------
# The argv


def _mounts(argv: list[str]) -> list[tuple[str, ...]]:
    """(option, path…) in order, for the mount options only."""
    out: list[tuple[str, ...]] = []
    words = iter(argv)
    for word in words:
        if word in ("--ro-bind", "--bind", "--dev-bind", "--symlink"):
            out.append((word, next(words), next(words)))
        elif word in ("--tmpfs", "--dev", "--proc"):
            out.append((word, next(words)))
    return out


def test_argv_binds_only_the_allow_list(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "lib").symlink_to("usr/lib")  # merged /usr: the same link inside
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "stub-resolv.conf").write_text("nameserver 127.0.0.53\n")
    (tmp_path / "etc" / "resolv.conf").symlink_to(tmp_path / "elsewhere" / "stub-resolv.conf")
    for folder in ("prefix/lib", "task", "opt", "scratch"):
        (tmp_path / folder).mkdir(parents=True)
    spec = jail.Jail(
        read_only=(
            tmp_path / "usr" / "lib",
            tmp_path / "lib",
            tmp_path / "lib64",  # missing on this "distribution": skipped, never an error
            tmp_path / "etc" / "resolv.conf",
            tmp_path / "prefix",
            tmp_path / "prefix" / "lib",  # inside the prefix: one bind shows it
            tmp_path / "task",
            tmp_path / "opt",
        ),
        read_write=(tmp_path / "scratch",),
        files=((tmp_path / "passwd", Path("/etc/passwd")),),
        share_network=False,
    )
    argv = jail.argv_prefix(spec)
    assert argv[0] == "bwrap" and argv[-1] == "--"
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    assert "--unshare-cgroup" in argv and "--unshare-net" in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    t = str(tmp_path)
    assert _mounts(argv) == [
        ("--tmpfs", "/tmp"),
        ("--symlink", "usr/lib", f"{t}/lib"),
        # a link whose target is not bound: its content at its place
        ("--ro-bind", f"{t}/etc/resolv.conf", f"{t}/etc/resolv.conf"),
        ("--ro-bind", f"{t}/opt", f"{t}/opt"),
        ("--ro-bind", f"{t}/prefix", f"{t}/prefix"),
        ("--ro-bind", f"{t}/task", f"{t}/task"),
        ("--ro-bind", f"{t}/usr/lib", f"{t}/usr/lib"),
        ("--ro-bind", f"{t}/passwd", "/etc/passwd"),
        ("--bind", f"{t}/scratch", f"{t}/scratch"),
        # an empty /dev with three devices: no tty, no pts, nothing of the host's
        ("--dev-bind", "/dev/null", "/dev/null"),
        ("--dev-bind", "/dev/zero", "/dev/zero"),
        ("--dev-bind", "/dev/urandom", "/dev/urandom"),
        ("--proc", "/proc"),
    ]
    assert "--unshare-net" not in jail.argv_prefix(jail.Jail(read_only=(), read_write=(), share_network=True))


def test_fallback_argv_keeps_the_network_only_for_the_emulator() -> None:
    shared = jail.fallback_argv(unshare="/usr/bin/unshare", share_network=True)
    assert shared[0] == "/usr/bin/unshare" and shared[-1] == "--" and "--net" not in shared
    # uid 65534 inside: no capability in its namespaces to unmount its own /proc
    assert "--map-user=65534" in shared and "--map-root-user" not in shared
    for flag in ("--user", "--pid", "--mount-proc", "--kill-child", "--ipc", "--uts"):
        assert flag in shared
    assert "--net" in jail.fallback_argv(share_network=False)


def test_interpreter_paths_are_its_prefix_and_the_folders_it_maps() -> None:
    python = verify.find_runtime_python("3.12").resolve()
    paths = jail.interpreter_paths(python)
    assert python.parents[1] in paths
    assert Path("/") not in paths
    assert all(p.is_dir() or p.is_file() for p in paths)


# ---------------------------------------------------------------------------
# Through verify


def _verify(
    tmp_path: Path, isolation: str, python: Path | None = None, *, emulator: bool = False
) -> verify.VerifyReport:
    handler = "def handler(event, context):\n    return {'ok': True}\n"
    env = EnvConfig(
        name="local" if emulator else "staging",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9" if emulator else None,
        emulator=EmulatorSettings(port=9) if emulator else None,
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
    the jail does not show: the sandbox must start the real binary (seen: every handler "exited with 1")."""
    link = tmp_path / "venv" / "bin" / "python3.12"
    link.parent.mkdir(parents=True)
    link.symlink_to(verify.find_runtime_python("3.12").resolve())
    assert str(link).startswith(tempfile.gettempdir())  # under /tmp: an empty tmpfs in the jail
    report = _verify(tmp_path, "bwrap", python=link)
    assert report.ok, report.problems()


def test_without_bwrap_an_aws_environment_stops_before_running_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bwrap on PATH (nothing uninstalled)
    with pytest.raises(VerifyError, match=r"inside bubblewrap, and bwrap is not installed") as info:
        _verify(tmp_path, "bwrap")
    assert "bubblewrap" in (info.value.hint or "")
    assert capsys.readouterr().err == ""  # refused before any notice or run


def test_isolation_none_runs_unjailed_and_says_so_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _verify(tmp_path, "none").ok
    err = capsys.readouterr().err
    assert err.count("verify.isolation is none") == 1
    assert "can read the deployer's credentials" in err

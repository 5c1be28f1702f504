"""The task layer: env selection, exit codes, and one place turning errors into exits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from deploy.cli import deploy_task
from deploy.errors import AuditError, DeployError

ROOT = Path(__file__).resolve().parents[2]


def _inv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_typed_errors_become_exit_with_their_code() -> None:
    @deploy_task
    def boom() -> None:
        raise AuditError("numpy: tag manylinux_2_38_x86_64 is too new")

    with pytest.raises(Exit) as exc:
        boom()
    assert exc.value.code == AuditError.exit_code == 5
    assert "numpy" in str(exc.value.message)


def test_every_error_class_has_a_distinct_exit_code() -> None:
    def walk(cls: type[DeployError]) -> list[type[DeployError]]:
        return [cls, *[c for sub in cls.__subclasses__() for c in walk(sub)]]

    codes = [c.exit_code for c in walk(DeployError)]
    assert len(codes) == len(set(codes)), codes
    assert 1 not in codes  # left to Invoke and crashes


@pytest.mark.parametrize("task", ["build-layer", "publish-layer", "attach", "status", "local.up"])
def test_unknown_env_exits_2_listing_known(task: str) -> None:
    result = _inv(task, "--env", "nosuch")
    assert result.returncode == 2, result.stderr
    assert "known environments: local, production, staging" in result.stderr


def test_inv_list_shows_local_tasks_with_help() -> None:
    result = _inv("--list")
    assert result.returncode == 0, result.stderr
    for name in ("local.up", "local.down", "deploy", "build-layer", "prune-layers", "infra.apply"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name))
        assert len(line.split()) > 1, f"{name} has no help line"


def _project_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    dest.mkdir()
    shutil.copy(ROOT / "tasks.py", dest / "tasks.py")
    return dest


def test_malformed_invoke_yaml_is_a_clear_error(tmp_path: Path) -> None:
    proj = _project_copy(tmp_path)
    (proj / "invoke.yaml").write_text("deploy:\n  environments:\n    local: [\n")
    result = _inv("status", "--env", "local", cwd=proj)
    assert result.returncode == 2
    assert "invoke.yaml is not valid YAML at line" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_invoke_yaml_names_the_key(tmp_path: Path) -> None:
    proj = _project_copy(tmp_path)
    result = _inv("status", "--env", "local", cwd=proj)
    assert result.returncode == 2
    assert "missing key deploy" in result.stderr


def test_aws_sdk_errors_become_a_clear_exit() -> None:
    from botocore.exceptions import ProfileNotFound

    @deploy_task
    def needs_profile() -> None:
        raise ProfileNotFound(profile="bluemoxon-staging")

    with pytest.raises(Exit) as exc:
        needs_profile()
    assert exc.value.code == 8
    assert "bluemoxon-staging" in str(exc.value.message)


@pytest.mark.parametrize(("flag", "value"), [("--arch", "sparc"), ("--builder", "make")])
def test_bad_build_flags_exit_2_before_any_work(flag: str, value: str) -> None:
    result = _inv("build-layer", flag, value)
    assert result.returncode == 2
    assert f"{flag} {value!r} is not one of" in result.stderr
    assert "installing" not in result.stderr


@pytest.mark.parametrize("dont_write", [False, True])
def test_tasks_cache_the_bytecode_invoke_turns_off_unless_the_user_does(tmp_path: Path, dont_write: bool) -> None:
    """Invoke sets sys.dont_write_bytecode before importing tasks.py, so deploy/ (and any library a
    venv holds without .pyc) was compiled from source on every run; tasks.py turns caching back on,
    but never against PYTHONDONTWRITEBYTECODE. tasks.py itself still gets no .pyc (Invoke's intent)."""
    import os

    proj = _project_copy(tmp_path)
    shutil.copy(ROOT / "invoke.yaml", proj / "invoke.yaml")
    shutil.copytree(ROOT / "deploy", proj / "deploy", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(proj)
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cached = sorted(p.name.split(".")[0] for p in (proj / "deploy").glob("__pycache__/*.pyc"))
    if dont_write:
        assert cached == []
    else:
        assert {"cli", "config", "settings"} <= set(cached), cached
    assert not (proj / "__pycache__").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("deploy", "--evn", "staging"), "unknown flag --evn for `inv deploy`; did you mean '--env'?"),
        (("deplyo",), "unknown task 'deplyo'; did you mean 'deploy'?"),
        (("deploy", "--lock-timeout", "abc"), "--lock-timeout expects seconds, got 'abc'"),
        (("prune-layers", "--keep", "many"), "--keep expects int, got 'many'"),
        (("bench", "--only", "nosuch"), "--only 'nosuch' is not one of build, coldstart, deploy, attach, cache"),
        (("build-layer", "--arch", "sparc"), "--arch 'sparc' is not one of x86_64, arm64"),
        (("deploy", "-s"), "unknown flag -s for `inv deploy`"),
        (("deploy", "-k"), "unknown flag -k for `inv deploy`"),
    ],
)
def test_command_line_misuse_exits_2_with_a_hint_and_no_traceback(args: tuple[str, ...], expected: str) -> None:
    """Invoke's own parser exits 1 ("No idea what ... is!") or prints a traceback for a bad value; the
    settings' standard is exit 2 naming the flag. The safety-skipping flags have no one-letter form."""
    result = _inv(*args)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_each_flags_type_and_default() -> None:
    result = _inv("--help", "deploy")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--lock-timeout=SECONDS" in text
    assert "(default: local)" in text  # --env
    assert "--skip-infra" in text and "-s, --skip-infra" not in text
    assert "--allow-destroy" in text


def test_local_status_exits_3_when_the_emulator_is_down() -> None:
    import os

    from tests.conftest import free_port

    env = {**os.environ, "INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_EMULATOR_PORT": str(free_port())}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "local.status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "not running" in result.stderr

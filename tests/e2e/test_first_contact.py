"""First contact, end to end on the emulator: the preflight stops before any write, status only reads.

Each test gets its own throwaway copy of the repository and its own emulator port (the harness of
test_deploy_local), so none depends on another's deploy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.aws import calls
from deploy.cli import env_config
from deploy.context import RunContext
from deploy.errors import DriftError
from deploy.run import deploy as flow
from tests.e2e.test_deploy_local import Project, new_project

pytestmark = [pytest.mark.e2e, pytest.mark.network]
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 145


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "clone"
    root.mkdir()
    proj = new_project(root)
    try:
        yield proj
    finally:
        proj.inv("local.down", check=False)


def _path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH whose folders hold links to everything on the real PATH but ``tools``."""
    links = tmp_path / "path-without"
    links.mkdir(exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            if entry.name in tools or (links / entry.name).exists() or not os.access(entry, os.X_OK):
                continue
            (links / entry.name).symlink_to(entry)
    return str(links)


def _run(proj: Project, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=proj.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_a_missing_terraform_stops_the_deploy_before_anything_is_written(fresh: Project, tmp_path: Path) -> None:
    fresh.inv("local.up")  # an emulator to look into afterwards
    env = {**fresh.env, "PATH": _path_without(tmp_path, "terraform")}
    result = _run(fresh, "deploy", "--env", "local", env=env)
    assert result.returncode == 15, result.stderr
    assert "✗ terraform: terraform not found on PATH" in result.stderr
    assert "fix: install Terraform >= 1.10" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was built, planned or written: no layer, no Terraform data dir, an empty emulator.
    assert not (fresh.root / ".build" / "layers").exists()
    assert not list((fresh.root / "infra" / "terraform").glob(".terraform-*"))
    assert fresh.client("s3").list_buckets()["Buckets"] == []
    assert fresh.client("lambda").list_functions()["Functions"] == []


def test_an_aws_environment_without_its_profile_stops_before_building(fresh: Project, tmp_path: Path) -> None:
    (tmp_path / "aws-config").write_text("")
    env = {
        **fresh.env,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-config"),
    }
    result = _run(fresh, "deploy", "--env", "staging", env=env)
    assert result.returncode == 15, result.stderr
    assert "AWS profile 'bluemoxon-staging' does not exist" in result.stderr
    assert "aws configure sso --profile bluemoxon-staging" in result.stderr
    assert not (fresh.root / ".build" / "layers").exists()
    assert "installing" not in result.stderr


def test_status_reads_only_before_and_after_a_deploy(fresh: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before anything: the emulator is down, so nothing is deployed; status says so and starts nothing.
    before = fresh.inv("status", "--env", "local", check=False)
    assert before.returncode == DriftError.exit_code, before.stderr
    assert "not applied yet" in before.stderr and "error:" not in before.stderr
    assert not (fresh.root / ".build" / "layers").exists()
    assert fresh.inv("local.status", check=False).returncode == 3  # no emulator was started

    fresh.inv("deploy", "--env", "local")
    # The first deploy planned once and applied that saved plan (each Terraform command logs to its own file).
    logs = sorted(p.name.split("-terraform-")[1] for p in (fresh.root / ".build" / "logs").glob("*-terraform-*.log"))
    assert logs == ["apply-local.log", "plan-local.log"]
    shutil.rmtree(fresh.root / ".build" / "layers")  # a machine that never built this layer
    after = fresh.inv("status", "--env", "local")
    assert "in sync" in after.stderr
    assert not (fresh.root / ".build" / "layers").exists()

    # In process, counting every AWS write call status makes (none), Terraform's state untouched.
    for key, value in fresh.env.items():
        if key.startswith("INVOKE_"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(fresh.root)
    from invoke.config import Config

    config = Config(project_location=str(fresh.root))
    config.load_project()
    config.load_shell_env()
    env = env_config(type("C", (), {"config": config})(), "local", root=fresh.root)
    state = fresh.client("s3").head_object(Bucket="terraform-state", Key="env:/local/bluemoxon/terraform.tfstate")
    with calls.count_writes() as writes:
        flow.status(RunContext.create(env))
    assert writes.count == 0, writes.calls
    again = fresh.client("s3").head_object(Bucket="terraform-state", Key="env:/local/bluemoxon/terraform.tfstate")
    assert again["ETag"] == state["ETag"]

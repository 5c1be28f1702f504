"""End to end on the embedded default: fresh moto server → `inv deploy --env local` twice.

Runs the real CLI in a throwaway copy of the repository (its own git history, Terraform
state and emulator port), so it never touches the developer's `.local/` or state.
Properties checked: the first deploy creates everything with no manual step; the second
changes nothing (no write call, no new layer or function version); `terraform plan`
shows no drift after either; a broken function is stopped before upload by the local
verify, and when forced past it, the deployed verify fails and every alias is restored.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.errors import BuildError, VerifyError
from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.network]
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 365

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Project:
    root: Path
    port: int

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INVOKE_"))}
        env["INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_EMULATOR_PORT"] = str(self.port)
        env["PYTHONPATH"] = str(self.root)
        return env

    def inv(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"inv {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def new_project(root: Path) -> Project:
    """A committed copy of the repository at ``root`` with its own emulator port."""
    _copy_repo(root)
    proj = Project(root=root, port=free_port())
    proj.git("init", "-q", "-b", "main")
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "add", "-A")
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qm", "snapshot")
    return proj


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    proj = new_project(tmp_path_factory.mktemp("clone"))
    try:
        yield proj
    finally:
        proj.inv("local.down", check=False)


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _alias_versions(proj: Project) -> dict[str, str]:
    lam = proj.client("lambda")
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    return {n: lam.get_alias(FunctionName=n, Name="live")["FunctionVersion"] for n in names}


def test_first_deploy_creates_everything_then_rerun_changes_nothing(project: Project) -> None:
    first = _report(project.inv("deploy", "--env", "local", "--json"))
    assert first["ok"] is True
    assert {fn["status"] for fn in first["functions"]} == {"updated"}
    assert len(first["functions"]) == 4
    assert first["publish"][0]["published"] is True
    assert first["layer"]["source"] == "built"  # the bucket was empty: a miss, then a local build
    # The healthy deploy's verify ran the real handlers with the real layer under python3.12.
    verify = first["verify"]["deployed"]
    assert verify["ok"] is True
    assert {f["key"] for f in verify["functions"]} == {"api", "cleanup", "db_sync", "eval_runbook_worker"}
    assert all(r["ok"] for f in verify["functions"] for r in f["results"])

    lam = project.client("lambda")
    layer_versions = lam.list_layer_versions(LayerName="bluemoxon-local-deps")["LayerVersions"]
    aliases = _alias_versions(project)
    assert set(aliases) == {
        "bluemoxon-local-api",
        "bluemoxon-local-cleanup",
        "bluemoxon-local-db-sync",
        "bluemoxon-local-eval-runbook-worker",
    }

    assert project.inv("infra.plan", "--env", "local", "--detailed-exitcode").returncode == 0

    s3 = project.client("s3")
    state_key = "env:/local/bluemoxon/terraform.tfstate"

    def state_versions() -> int:
        listed = s3.list_object_versions(Bucket="terraform-state", Prefix=state_key)
        return len([v for v in listed.get("Versions", []) if v["Key"] == state_key])

    versions_before = state_versions()
    assert versions_before >= 1
    second = _report(project.inv("deploy", "--env", "local", "--json"))
    assert second["ok"] is True
    assert second["aws_write_calls"] == 0
    # Terraform's writes count too: no apply, and the state object has no new version.
    assert second["terraform"]["apply"] == "skipped" and second["terraform"]["state_written"] is False
    assert second["terraform"]["reason"].startswith("configuration, variables and state unchanged")
    assert state_versions() == versions_before
    assert second["plan"]["empty"] is True
    assert {fn["status"] for fn in second["functions"]} == {"unchanged"}
    assert second["publish"][0]["published"] is False
    assert second["layer"]["source"] == "already built here; nothing to do"
    assert lam.list_layer_versions(LayerName="bluemoxon-local-deps")["LayerVersions"] == layer_versions
    assert _alias_versions(project) == aliases
    assert project.inv("infra.plan", "--env", "local", "--detailed-exitcode").returncode == 0
    assert project.inv("status", "--env", "local").returncode == 0

    # A code change: --dry-run names it and writes nothing.
    version = project.root / "backend" / "VERSION"
    version.write_text("9.9.9\n")
    dry = _report(project.inv("deploy", "--env", "local", "--dry-run", "--json"))
    version.write_text((ROOT / "backend" / "VERSION").read_text())
    assert dry["aws_write_calls"] == 0
    assert {fn["status"] for fn in dry["functions"]} == {"would update"}
    assert _alias_versions(project) == aliases


def test_broken_function_never_reaches_traffic(project: Project) -> None:
    # Runs after the healthy deploy above (same module fixture); deploy it first if run alone.
    if project.inv("status", "--env", "local", check=False).returncode != 0:
        project.inv("deploy", "--env", "local")
    before = _alias_versions(project)
    handler = project.root / "backend" / "lambdas" / "cleanup" / "handler.py"
    original = handler.read_text()
    handler.write_text(original + "\nimport module_that_is_not_in_the_layer  # noqa\n")
    project.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qam", "break cleanup")
    try:
        # Gate 1: the sandbox run of the local artifacts stops it before anything is uploaded.
        gated = project.inv("deploy", "--env", "local", check=False)
        assert gated.returncode == VerifyError.exit_code, gated.stderr
        assert "bluemoxon-local-cleanup" in gated.stderr or "cleanup" in gated.stderr
        assert "module_that_is_not_in_the_layer" in gated.stderr
        assert "Traceback (most recent call last)" not in gated.stderr.split("error:")[-1]
        assert _alias_versions(project) == before

        # Gate 2: forced past the local gate, the deployed verify fails and every alias is restored.
        forced = project.inv("deploy", "--env", "local", "--skip-local-verify", "--json", check=False)
        assert forced.returncode == VerifyError.exit_code, forced.stderr
        report = _report(forced)
        assert report["ok"] is False
        assert report["rolled_back"] is True
        assert "module_that_is_not_in_the_layer" in forced.stderr
        assert _alias_versions(project) == before
    finally:
        handler.write_text(original)
        project.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qam", "fix cleanup")


def test_a_code_only_deploy_stands_on_the_local_verify_of_the_same_bytes(project: Project) -> None:
    """On the emulator the deployed verify does not run again what verify --local ran in the same run:
    Lambda's CodeSha256, the attached layer version and the sandbox environment all match (every line
    says why); the report times each step, for the bench."""
    if project.inv("status", "--env", "local", check=False).returncode != 0:
        project.inv("deploy", "--env", "local")
    handler = project.root / "backend" / "lambdas" / "cleanup" / "handler.py"
    handler.write_text(handler.read_text() + "\n# a code-only change\n")
    project.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qam", "code only")
    result = project.inv("deploy", "--env", "local", "--json")
    report = _report(result)
    assert report["ok"] is True and report["terraform"]["apply"] == "skipped"
    local, deployed = report["verify"]["local"], report["verify"]["deployed"]
    assert deployed["ok"] is True
    arn = report["publish"][0]["layer_version_arn"]
    for fn in deployed["functions"]:
        assert fn["reused"].startswith("not run again: verify --local ran these bytes in this run"), fn
        assert fn["layers"] == [arn]
        assert fn["code_sha256"] == report["function"]["code_sha256"]
    ran = {f["key"]: f["results"] for f in local["functions"]}
    assert {f["key"]: f["results"] for f in deployed["functions"]} == ran
    assert result.stderr.count("not run again: verify --local ran these bytes") == 4
    assert {"build", "plan", "verify local", "lock", "attach", "verify deployed"} <= set(report["step_seconds"])


def test_a_killed_emulator_needs_no_manual_step(project: Project) -> None:
    """SIGKILL leaves a stale pidfile; the next deploy clears it, starts a fresh server and
    recreates everything (the fresh server is empty, state included)."""
    if project.inv("status", "--env", "local", check=False).returncode != 0:
        project.inv("deploy", "--env", "local")
    pidfile = project.root / ".local" / f"moto-{project.port}.pid"
    pid = json.loads(pidfile.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    status = project.inv("local.status", "--env", "local", check=False)
    assert f"pid {pid} is gone" in status.stdout + status.stderr

    again = project.inv("deploy", "--env", "local")
    assert f"cleared stale pidfile {pidfile}: pid {pid} is gone" in again.stdout + again.stderr
    assert json.loads(pidfile.read_text())["pid"] != pid
    assert len(_alias_versions(project)) == 4
    assert project.inv("infra.plan", "--env", "local", "--detailed-exitcode").returncode == 0


def test_a_fresh_clone_fetches_the_layer_instead_of_installing(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Runner B reuses runner A's build through the artifact bucket, with no index and no uv cache."""
    if project.inv("status", "--env", "local", check=False).returncode != 0:
        project.inv("deploy", "--env", "local")
    built_a = sorted((project.root / ".build" / "layers").glob("*.zip"))
    assert len(built_a) == 1

    clone = Project(root=tmp_path_factory.mktemp("clone-b"), port=project.port)
    _copy_repo(clone.root)
    shutil.rmtree(clone.root / ".build", ignore_errors=True)
    # The installer cannot work here: its index refuses connections and there is no cache to fall back on.
    offline = {"UV_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple", "UV_NO_CACHE": "1", "UV_OFFLINE": "1"}
    env = {**clone.env, **offline}

    def build(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "build-layer", "--env", "local", *flags],
            cwd=clone.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    fetched = build()
    assert fetched.returncode == 0, fetched.stderr
    assert "fetched from s3://" in fetched.stderr
    built_b = sorted((clone.root / ".build" / "layers").glob("*.zip"))
    assert [p.name for p in built_b] == [p.name for p in built_a]
    assert built_b[0].read_bytes() == built_a[0].read_bytes()
    assert (clone.root / ".build" / "layers" / built_a[0].name.replace(".zip", ".cdx.json")).is_file()

    # Proof that the installer really was unusable: without the cache the same build fails.
    shutil.rmtree(clone.root / ".build")
    local_only = build("--no-remote-cache")
    assert local_only.returncode == BuildError.exit_code, local_only.stderr
    # uv's words for "nothing to install from": without a cache and offline (the pins passed without
    # markers since the identity holds only what installs on the target, uv names the disabled network).
    assert "uv install failed" in local_only.stderr
    assert "no matching distribution" in local_only.stderr or "network was disabled" in local_only.stderr

    # Nothing to do means nothing to fetch: a fresh runner on the deployed commit (same code, same
    # lock) plans from the published identity and downloads no layer, with the installer still unusable.
    runner_c = tmp_path_factory.mktemp("clone-c") / "repo"
    subprocess.run(["git", "clone", "-q", str(project.root), str(runner_c)], check=True)
    shutil.copytree(project.root / ".local", runner_c / ".local")  # the same emulator, which A started
    c_env = {**Project(root=runner_c, port=project.port).env, **offline}
    noop = subprocess.run(
        [sys.executable, "-m", "invoke", "deploy", "--env", "local", "--json"],
        cwd=runner_c,
        env=c_env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert noop.returncode == 0, noop.stderr
    report = _report(noop)
    assert report["layer"]["source"] == "published already, not fetched; nothing to do"
    assert report["aws_write_calls"] == 0
    assert list((runner_c / ".build" / "layers").glob("*.zip")) == []

"""End to end: a team's own functions. A copy of the repository whose Terraform function map
(envs/local.tfvars) declares two functions of other names, with their code and smoke events, deploys,
verifies and reports through the real CLI against a moto server, with nothing under deploy/ changed;
removing one is an edit of the map, and the next deploy removes it (the sample's names appear nowhere)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.errors import ConfigError, DestroyRefused, VerifyError
from tests.conftest import free_port
from tests.e2e.test_deploy_local import ROOT, Project, _copy_repo

pytestmark = [pytest.mark.e2e, pytest.mark.network]
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 270

FUNCTIONS = """
functions = {
  notifier = {
    handler = "notify.main.handler"
    sources = ["notify"]
    invokes = { REPORTER_FUNCTION_NAME = "reporter" }
  }
  reporter = {
    handler     = "reports.handler"
    sources     = ["reports.py"]
    environment = { REPORT_FORMAT = "csv" }
  }
}
"""


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(f"{path.relative_to(folder)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def _own_project(root: Path, port: int) -> Project:
    _copy_repo(root)
    backend = root / "backend"
    (backend / "notify").mkdir()
    (backend / "notify" / "__init__.py").write_text("")
    (backend / "notify" / "main.py").write_text(
        "import os\n\n\ndef handler(event, context):\n"
        "    return {'notified': event.get('to'), 'reporter': bool(os.environ.get('REPORTER_FUNCTION_NAME'))}\n"
    )
    (backend / "reports.py").write_text(
        "import os\n\n\ndef handler(event, context):\n    return os.environ['REPORT_FORMAT']\n"
    )
    tfvars = root / "infra" / "terraform" / "envs" / "local.tfvars"
    tfvars.write_text(tfvars.read_text() + FUNCTIONS)
    settings = yaml.safe_load((root / "invoke.yaml").read_text())
    # The team's own verify settings: events for the notifier; the reporter has none (import only).
    settings["deploy"]["smoke"] = {
        "notifier": [{"name": "notify", "event": {"to": "ops"}, "expect": {"equals": {"notified": "ops"}}}]
    }
    settings["deploy"]["verify"] = {"sandbox_env": {"*": {"DATABASE_URL": "sqlite:///{tmp}/own.db"}}}
    (root / "invoke.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    proj = Project(root=root, port=port)
    proj.git("init", "-q", "-b", "main")
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "add", "-A")
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qm", "own functions")
    return proj


def _names(lam: Any) -> list[str]:
    return sorted(f["FunctionName"] for f in lam.list_functions()["Functions"])


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_two_functions_of_other_names_deploy_verify_report_and_one_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)  # --strict is on by default in CI; this run asks for it itself
    # The copy starts its own moto server (on a free port) as a deploy does, and stops it at the end.
    proj = _own_project(tmp_path / "own", free_port())
    try:
        _deploy_verify_remove(proj)
    finally:
        proj.inv("local.down", check=False)


def _deploy_verify_remove(proj: Project) -> None:
    assert _tree_digest(proj.root / "deploy") == _tree_digest(ROOT / "deploy")

    deployed = _json(proj.inv("deploy", "--env", "local", "--json"))
    assert deployed["ok"] is True
    assert sorted(f["name"] for f in deployed["functions"]) == ["bluemoxon-local-notifier", "bluemoxon-local-reporter"]
    verify = {f["key"]: f for f in deployed["verify"]["deployed"]["functions"]}
    assert set(verify) == {"notifier", "reporter"}
    assert [r["ok"] for r in verify["notifier"]["results"]] == [True]
    assert verify["reporter"]["ok"] is True and verify["reporter"]["results"] == []  # import only
    lam = proj.client("lambda")
    notifier = lam.get_function_configuration(FunctionName="bluemoxon-local-notifier")
    assert notifier["Environment"]["Variables"]["REPORTER_FUNCTION_NAME"].endswith(":bluemoxon-local-reporter:live")
    assert {f["FunctionName"] for f in lam.list_functions()["Functions"]} == {
        "bluemoxon-local-notifier",
        "bluemoxon-local-reporter",
    }

    shown = proj.inv("verify", "--env", "local")
    assert "import only" in shown.stdout + shown.stderr
    strict = proj.inv("verify", "--env", "local", "--strict", check=False)
    assert strict.returncode == VerifyError.exit_code, strict.stderr
    assert "only imported, no smoke events: bluemoxon-local-reporter" in strict.stderr

    typo = proj.inv("rollback", "--env", "local", "--function", "notifer", check=False)
    assert typo.returncode == ConfigError.exit_code
    assert "unknown function 'notifer'; did you mean 'notifier'?" in typo.stderr

    # Removing a function is an edit of the map (and of its smoke events); nothing else.
    tfvars = proj.root / "infra" / "terraform" / "envs" / "local.tfvars"
    text = tfvars.read_text()
    tfvars.write_text(text[: text.index("  reporter = {")] + "}\n")
    (proj.root / "infra" / "terraform" / "envs" / "local.tfvars").write_text(
        tfvars.read_text().replace('    invokes = { REPORTER_FUNCTION_NAME = "reporter" }\n', "")
    )
    # The removal is shown before it happens, and refused unless asked for: nothing changes.
    dry = proj.inv("deploy", "--env", "local", "--dry-run")
    assert "remove function bluemoxon-local-reporter" in dry.stderr
    live_before = {n: lam.get_alias(FunctionName=n, Name="live")["FunctionVersion"] for n in _names(lam)}
    refused = proj.inv("deploy", "--env", "local", check=False)
    assert refused.returncode == DestroyRefused.exit_code, refused.stderr
    assert "would remove function bluemoxon-local-reporter; nothing was changed" in refused.stderr
    assert "--allow-destroy" in refused.stderr
    assert {n: lam.get_alias(FunctionName=n, Name="live")["FunctionVersion"] for n in _names(lam)} == live_before
    again = _json(proj.inv("deploy", "--env", "local", "--json", "--allow-destroy"))
    assert again["ok"] is True and again["terraform"]["apply"] == "applied"
    assert {f["FunctionName"] for f in lam.list_functions()["Functions"]} == {"bluemoxon-local-notifier"}
    assert proj.inv("status", "--env", "local").returncode == 0
    assert proj.inv("infra.plan", "--env", "local", "--detailed-exitcode").returncode == 0
    assert _tree_digest(proj.root / "deploy") == _tree_digest(ROOT / "deploy")

    # A function the apply would create runs in the sandbox before anything is applied or uploaded:
    # a broken one stops the deploy with Lambda and Terraform's state as they were.
    (proj.root / "backend" / "auditor.py").write_text(
        "import no_such_module\n\n\ndef handler(event, context):\n    return 1\n"
    )
    text = tfvars.read_text()
    tfvars.write_text(
        text[: text.rindex("}")]
        + '  auditor = {\n    handler = "auditor.handler"\n    sources = ["auditor.py"]\n  }\n}\n'
    )
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "add", "-A")
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qm", "auditor")
    state = proj.client("s3").head_object(Bucket="terraform-state", Key="env:/local/bluemoxon/terraform.tfstate")
    broken = proj.inv("deploy", "--env", "local", check=False)
    assert broken.returncode == VerifyError.exit_code, broken.stderr
    assert "bluemoxon-local-auditor" in broken.stderr and "no_such_module" in broken.stderr
    assert _names(lam) == ["bluemoxon-local-notifier"]
    after = proj.client("s3").head_object(Bucket="terraform-state", Key="env:/local/bluemoxon/terraform.tfstate")
    assert after["ETag"] == state["ETag"]  # Terraform did not apply

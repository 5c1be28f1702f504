"""`inv verify --local` needs no AWS: CI's build job, which holds no credentials, runs it (deploy.verify.local).

The function map comes from Terraform's configuration (no state exists here), the sandbox environment from
the settings; the AWS variables are poisoned and every botocore client refuses to send anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from deploy.artifact import Artifact
from deploy.config import EnvConfig, Paths, SmokeCase, VerifySettings
from deploy.context import RunContext
from deploy.errors import ConfigError, VerifyError
from deploy.run import checks, layer_source
from deploy.verify.local import declared_targets, verify_offline
from tests.unit.no_aws import forbid_aws
from tests.unit.test_verify import HOST_ARCH, layer_zip

VARIABLES_TF = """
variable "environment" {
  type = string
}

variable "functions" {
  type = map(object({
    handler = string
    sources = list(string)
  }))
  default = {
    ok = {
      handler = "lambdas.ok.handler.handler"
      sources = ["lambdas"]
    }
  }
}
"""

HANDLER = """
import os
import tinydep

def handler(event, context):
    return {
        "value": tinydep.VALUE,
        "sqlite": os.environ["DATABASE_URL"].startswith("sqlite:///"),
        "name": context.function_name,
    }
"""

SMOKE = {"ok": (SmokeCase(name="answer", event={}, expect={"equals": {"value": 42, "sqlite": True, "name": "ok"}}),)}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "infra" / "terraform").mkdir(parents=True)
    (root / "infra" / "terraform" / "variables.tf").write_text(VARIABLES_TF)
    backend = root / "backend"
    (backend / "lambdas" / "ok").mkdir(parents=True)
    (backend / "VERSION").write_text("1.0.0\n")
    (backend / "lambdas" / "__init__.py").write_text("")
    (backend / "lambdas" / "ok" / "__init__.py").write_text("")
    (backend / "lambdas" / "ok" / "handler.py").write_text(HANDLER)
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], [*ident, "add", "-A"], [*ident, "commit", "-qm", "app"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def staging(root: Path) -> EnvConfig:
    """An AWS environment (no emulator: the jail is required), whose profile exists nowhere."""
    return EnvConfig(
        name="staging",
        region="us-west-2",
        profile="bluemoxon-staging",
        tfvars="envs/staging.tfvars",
        architecture=HOST_ARCH,
        bytecode=False,
        paths=Paths(root=root),
        verify=VerifySettings(smoke=SMOKE, sandbox_env={"*": {"DATABASE_URL": "sqlite:///{tmp}/sandbox.db"}}),
    )


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    return forbid_aws(monkeypatch, tmp_path)


def test_the_hook_catches_a_request(no_aws: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture is able to fail: a client that sends anything trips it."""
    monkeypatch.delenv("AWS_PROFILE")  # the poisoned profile alone would stop this client being made
    client = botocore.session.Session().create_client(
        "lambda", region_name="us-west-2", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with pytest.raises(AssertionError, match="about to be sent"):
        client.list_functions()
    assert no_aws == ["before-send.lambda.ListFunctions"]


def test_the_function_map_is_terraforms_configuration_without_state(project: Path) -> None:
    [fn] = declared_targets(staging(project))
    assert (fn.key, fn.name, fn.handler, fn.sources) == ("ok", "ok", "lambdas.ok.handler.handler", ("lambdas",))


def test_verify_local_runs_every_declared_handler_without_any_aws_call(
    project: Path, tmp_path: Path, no_aws: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's path (deploy.run.checks.verify --local): builds the function code, runs it on the built layer."""
    layer = layer_zip(tmp_path)
    monkeypatch.setattr(layer_source, "_built_layer", lambda ctx: layer)  # what `inv build-layer` left in .build
    report: list[Any] = []
    monkeypatch.setattr(checks, "emit_json", report.append)
    checks.verify(RunContext.create(staging(project), strict=True), local=True, as_json=True)
    assert no_aws == []
    [fn] = report[0]["functions"]
    assert fn["ok"] and [r["case"] for r in fn["results"]] == ["answer"]
    assert report[0]["mode"] == "local"


def test_a_failing_handler_fails_offline_too(project: Path, tmp_path: Path, no_aws: list[str]) -> None:
    env = staging(project)
    layer = layer_zip(tmp_path, {"python/tinydep/__init__.py": "VALUE = 41\n"})
    function = _function(env)
    report = verify_offline(env, layer=layer, function=function)
    assert not report.ok
    assert "expected value == 42, got 41" in " ".join(report.problems())
    with pytest.raises(VerifyError):
        report.raise_for_failures()
    assert no_aws == []


def test_a_smoke_key_terraform_does_not_declare_is_refused(project: Path, tmp_path: Path, no_aws: list[str]) -> None:
    env = staging(project)
    wrong = EnvConfig(**{**env.__dict__, "verify": VerifySettings(smoke={"ok": SMOKE["ok"], "okk": SMOKE["ok"]})})
    with pytest.raises(ConfigError, match="okk"):
        verify_offline(wrong, layer=layer_zip(tmp_path), function=_function(env))


def _function(env: EnvConfig) -> Artifact:
    from deploy import build

    return build.build_function(build.function_plan(env)).artifact

"""The deploy flow's canary on moto (``deploy.run.deploy._apply_plan``): attach at the first weight,
the deployed verify run against the NEW version (in the sandbox), then the rollout to 100 %.

The hold is 0 s here (``RolloutSettings`` built directly; ``load_env`` refuses less than the verify's
timeout), so the flow runs with no sleep at all; the holds themselves are tested in test_rollout.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from deploy import plan as plan_mod
from deploy.aws import rollout
from deploy.config import EnvConfig, RolloutSettings, VerifySettings
from deploy.context import RunContext
from deploy.errors import VerifyError
from deploy.report import DeployReport
from deploy.run.deploy import _apply_plan
from tests.aws import test_verify_deployed as vd
from tests.aws.test_verify_deployed import HANDLER, Stack, artifact_of, zip_of

CANARY = RolloutSettings(strategy="canary", percent=10, interval=0, alarms=())


@pytest.fixture
def canary_env() -> EnvConfig:
    return EnvConfig(name="test", region=vd.REGION, verify=VerifySettings(smoke=vd.SMOKE), rollout=CANARY)


@pytest.fixture
def stack(tmp_path: Path, lam: Any, s3: Any, role: str, bucket: str) -> Stack:
    """verify_deployed's stack (one function at version 1 behind `live`), its layer object in S3 with the
    checksum a publish leaves, so the deploy plans no publish."""
    made = Stack(tmp_path, lam, s3, role, dataclasses.replace(vd.stack_targets.__wrapped__(bucket)))
    s3.put_object(Bucket=bucket, Key=made.layer.s3_key, Body=made.layer.path.read_bytes(), ChecksumAlgorithm="SHA256")
    return made


def function_zip(tmp_path: Path, handler: str) -> Any:
    return artifact_of(
        tmp_path,
        "function",
        zip_of({"lambdas/__init__.py": "", "lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": handler}),
    )


def deploy(env: EnvConfig, stack: Stack, function: Any) -> DeployReport:
    report = DeployReport(env=env.name, dry_run=False)
    plan = plan_mod.compute(env, stack.targets, layer=stack.layer, function=function)
    _apply_plan(RunContext.create(env), stack.targets, plan, stack.layer, function, report)
    return report


def alias(stack: Stack) -> tuple[str, dict[str, float]]:
    got = stack.lam.get_alias(FunctionName=stack.targets.functions[0].name, Name="live")
    return got["FunctionVersion"], rollout.weights(got)


def test_a_canary_deploy_verifies_the_new_version_then_ends_on_it(
    tmp_path: Path, stack: Stack, canary_env: EnvConfig, inject: Any
) -> None:
    new = function_zip(tmp_path, HANDLER + "\n# v2\n")
    during_verify: list[tuple[str, dict[str, float]]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        if params.get("Qualifier") == "2":
            during_verify.append(alias(stack))

    inject("lambda", "GetFunctionConfiguration", seen)
    report = deploy(canary_env, stack, new)
    # the last read of version 2 is the verify's (the attach's wait for Active reads it before the shift)
    assert during_verify[-1] == ("1", {"2": 0.1})
    assert alias(stack) == ("2", {})
    [checked] = report.verify["deployed"]["functions"]
    assert checked["code_sha256"] == new.code_sha256 and checked["ok"]


def test_a_canary_whose_new_version_fails_verify_is_rolled_back(
    tmp_path: Path, stack: Stack, canary_env: EnvConfig
) -> None:
    """The alias still names version 1 at the canary weight: a verify of the alias would pass."""
    broken = function_zip(tmp_path, "raise ImportError('v2 is broken')\n")
    with pytest.raises(VerifyError, match="rolled back"):
        deploy(canary_env, stack, broken)
    assert alias(stack) == ("1", {})

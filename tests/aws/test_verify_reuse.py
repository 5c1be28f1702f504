"""The deployed verify on the emulator stands on the local one only when code, layers and sandbox are proven
the same; any difference runs it, and an AWS environment always runs it (deploy.verify.reuse)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from deploy import verify
from deploy.config import EmulatorSettings, EnvConfig, FunctionTarget, VerifySettings
from deploy.verify import deployed
from deploy.verify.results import FunctionVerify, VerifyReport
from deploy.verify.reuse import RanLocally
from tests.aws.test_verify_deployed import REGION, SMOKE, NoUrl, Stack
from tests.targets import make_targets

SANDBOX_ENV = {"*": {"DATABASE_URL": "sqlite:///{tmp}/sandbox.db"}}


@pytest.fixture(scope="module")
def python312() -> Path:
    return verify.find_runtime_python("3.12")


def emulator_env(**verify_settings: Any) -> EnvConfig:
    """The local environment's shape: an emulator, no remote invoke."""
    settings = {"smoke": SMOKE, "sandbox_env": SANDBOX_ENV, **verify_settings}
    return EnvConfig(name="local", region=REGION, emulator=EmulatorSettings(), verify=VerifySettings(**settings))


@pytest.fixture
def stack(tmp_path: Path, lam: Any, s3: Any, role: str, bucket: str) -> Stack:
    targets = make_targets(
        "local", (FunctionTarget(key="ok", name="acme-local-ok", handler="lambdas.ok.handler.handler"),), bucket=bucket
    )
    return Stack(tmp_path, lam, s3, role, targets)


@pytest.fixture
def sandbox_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The keys of the functions the deployed verify ran in a sandbox."""
    ran: list[str] = []
    real = deployed._run_jobs

    def spy(env: EnvConfig, jobs: Sequence[Any], **kw: Any) -> list[FunctionVerify]:
        ran.extend(job.target.key for job in jobs)
        return real(env, jobs, **kw)

    monkeypatch.setattr(deployed, "_run_jobs", spy)
    yield ran


def local_run(stack: Stack, env: EnvConfig, python: Path, *, variables: dict[str, str] | None = None) -> VerifyReport:
    """verify --local as the deploy runs it: with the function's configuration as Lambda has it."""
    report = verify.verify_local(
        env,
        stack.targets,
        layer=stack.layer,
        function=stack.code,
        python=python,
        environment={"ok": variables if variables is not None else {"CUSTOM": "deployed"}},
        memory_mb={"ok": 256},
    )
    assert report.ok, report.problems()
    return report


def deployed_run(stack: Stack, env: EnvConfig, python: Path, ran: RanLocally) -> FunctionVerify:
    report = verify.verify_deployed(
        env,
        stack.targets,
        expected_layer=stack.layer,
        expected_function=stack.code,
        python=python,
        fetch=NoUrl(),
        ran_locally=ran,
    )
    assert report.ok, report.problems()
    [result] = report.functions
    return result


def test_the_same_bytes_layers_and_sandbox_on_the_emulator_are_not_run_again(
    stack: Stack, python312: Path, sandbox_runs: list[str]
) -> None:
    env = emulator_env()
    local = local_run(stack, env, python312)
    result = deployed_run(stack, env, python312, RanLocally.of([local], layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == []
    assert result.reused is not None
    assert result.reused.startswith("not run again: verify --local ran these bytes in this run")
    assert stack.code.code_sha256[:12] in result.reused
    assert result.layers == (stack.layer_arn,)
    assert result.results == local.functions[0].results  # the local verify's answers stand


def test_another_layer_version_arn_runs_the_deployed_verify(
    stack: Stack, python312: Path, sandbox_runs: list[str]
) -> None:
    env = emulator_env()
    local = local_run(stack, env, python312)
    other = stack.layer_arn.rsplit(":", 1)[0] + ":99"  # a version this run did not attach
    result = deployed_run(stack, env, python312, RanLocally.of([local], layer_arns=(other,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


@pytest.mark.parametrize("what", ["code", "layer"])
def test_another_sha256_runs_the_deployed_verify(
    stack: Stack, python312: Path, sandbox_runs: list[str], what: str
) -> None:
    env = emulator_env()
    [fn] = local_run(stack, env, python312).functions
    changed = (
        dataclasses.replace(fn, code_sha256="A" * 43 + "=")
        if what == "code"
        else dataclasses.replace(fn, layer_code_sha256=("B" * 43 + "=",))
    )
    result = deployed_run(stack, env, python312, RanLocally(functions={"ok": changed}, layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


def test_another_function_variable_runs_the_deployed_verify(
    stack: Stack, python312: Path, sandbox_runs: list[str]
) -> None:
    """The local verify ran with the variables Lambda had before (an apply changed one since)."""
    env = emulator_env()
    local = local_run(stack, env, python312, variables={"CUSTOM": "deployed", "EXTRA": "before the apply"})
    result = deployed_run(stack, env, python312, RanLocally.of([local], layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


def test_another_sandbox_env_setting_runs_the_deployed_verify(
    stack: Stack, python312: Path, sandbox_runs: list[str]
) -> None:
    local = local_run(stack, emulator_env(), python312)
    other = emulator_env(sandbox_env={"*": {"DATABASE_URL": "sqlite:///{tmp}/other.db"}})
    result = deployed_run(stack, other, python312, RanLocally.of([local], layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


def test_another_memory_size_runs_the_deployed_verify(stack: Stack, python312: Path, sandbox_runs: list[str]) -> None:
    env = emulator_env()
    local = verify.verify_local(
        env,
        stack.targets,
        layer=stack.layer,
        function=stack.code,
        python=python312,
        environment={"ok": {"CUSTOM": "deployed"}},  # memory: the default 128, Lambda has 256
    )
    result = deployed_run(stack, env, python312, RanLocally.of([local], layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


def test_a_failed_local_result_is_never_stood_on(stack: Stack, python312: Path, sandbox_runs: list[str]) -> None:
    env = emulator_env()
    [fn] = local_run(stack, env, python312).functions
    failed = dataclasses.replace(fn, ok=False, error="it failed")
    result = deployed_run(stack, env, python312, RanLocally(functions={"ok": failed}, layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


def test_an_aws_environment_always_runs_the_deployed_verify(
    stack: Stack, python312: Path, sandbox_runs: list[str]
) -> None:
    """Everything matches, but without an emulator (staging, production) the deployed verify runs."""
    aws = dataclasses.replace(emulator_env(), name="staging", emulator=None)
    local = local_run(stack, aws, python312)
    result = deployed_run(stack, aws, python312, RanLocally.of([local], layer_arns=(stack.layer_arn,)))
    assert sandbox_runs == ["ok"]
    assert result.reused is None


def test_the_remote_invoke_setting_runs_the_deployed_verify(stack: Stack, python312: Path) -> None:
    from deploy.verify.reuse import reused

    env = emulator_env(remote=True)
    [fn] = local_run(stack, emulator_env(), python312).functions
    ran = RanLocally(functions={"ok": fn}, layer_arns=(stack.layer_arn,))
    same = {
        "key": "ok",
        "layer_arns": (stack.layer_arn,),
        "code_sha256": fn.code_sha256,
        "layer_code_sha256": fn.layer_code_sha256,
        "environment_sha256": fn.environment_sha256 or "",
    }
    assert reused(emulator_env(), ran, **same) is not None
    assert reused(env, ran, **same) is None


def test_a_deployed_report_is_not_a_local_run() -> None:
    report = VerifyReport(env="local", mode="deployed", functions=(), ok=True)
    with pytest.raises(ValueError, match="not a local verify"):
        RanLocally.of([report], layer_arns=())


def test_the_deploy_flow_hands_its_local_reports_and_attached_layers_to_the_deployed_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deploy.context import RunContext
    from deploy.run import checks

    seen: dict[str, Any] = {}

    def deployed_verify(*_: Any, **kwargs: Any) -> VerifyReport:
        seen.update(kwargs)
        return VerifyReport(env="local", mode="deployed", functions=(), ok=True)

    monkeypatch.setattr(verify, "verify_deployed", deployed_verify)
    fn = FunctionVerify(key="ok", name="acme-local-ok", import_ms=1.0, results=(), ok=True, code_sha256="c")
    local = VerifyReport(env="local", mode="local", functions=(fn,), ok=True)
    targets = make_targets("local", (FunctionTarget(key="ok", name="acme-local-ok", handler="h.handler"),))
    ctx = RunContext.create(emulator_env())
    checks._verify_deployed(ctx, targets, None, None, local_reports=[local], layer_arns=("arn:layer:1",))
    assert seen["ran_locally"] == RanLocally(functions={"ok": fn}, layer_arns=("arn:layer:1",))
    checks._verify_deployed(ctx, targets, None, None)  # `inv verify`, or --skip-local-verify: nothing to stand on
    assert seen["ran_locally"] is None

"""The run context: made once from the settings and the flags, it answers each question of a run once."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

import tasks
from deploy import build
from deploy.config import EmulatorSettings, EnvConfig, Paths
from deploy.context import Aws, RunContext
from deploy.errors import ConfigError


def settings(tmp_path: Path, **kw: Any) -> EnvConfig:
    return EnvConfig(name="test", region="us-east-1", paths=Paths(root=tmp_path), **kw)


def test_the_flags_become_the_runs_settings_and_the_layer_plan_is_computed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []

    def layer_plan(env: EnvConfig, **kw: Any) -> object:
        assert not kw  # the flags reach the plan through the settings, never beside them
        seen.append((env.architecture, env.builder))
        return object()

    monkeypatch.setattr(build, "layer_plan", layer_plan)
    ctx = RunContext.create(settings(tmp_path), architecture="arm64", builder="pip", strict=True)
    assert (ctx.settings.architecture, ctx.settings.builder, ctx.settings.verify.strict) == ("arm64", "pip", True)
    assert ctx.layer_plan is ctx.layer_plan
    assert seen == [("arm64", "pip")]
    # No flag: the environment's own values, untouched.
    plain = settings(tmp_path, architecture="arm64")
    assert RunContext.create(plain).settings is plain


@pytest.mark.parametrize(("flag", "value"), [("architecture", "sparc"), ("builder", "poetry")])
def test_a_flag_outside_its_choices_is_refused_naming_it(tmp_path: Path, flag: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{value!r} is not one of") as raised:
        RunContext.create(settings(tmp_path), **{flag: value})
    assert raised.value.exit_code == 2


def test_one_answer_to_is_this_the_emulator(tmp_path: Path) -> None:
    local = RunContext.create(
        settings(tmp_path, emulator=EmulatorSettings(port=5123), endpoint_url="http://127.0.0.1:5123")
    )
    assert local.is_emulator and local.aws.is_emulator and local.aws.endpoint_url == "http://127.0.0.1:5123"
    # An endpoint without an emulator section (a proxy, a VPC endpoint) is not the emulator.
    proxied = RunContext.create(settings(tmp_path, endpoint_url="https://lambda.example"))
    assert not proxied.is_emulator


@mock_aws
def test_the_aws_object_makes_the_clients_and_counts_their_writes(tmp_path: Path) -> None:
    aws = Aws.of(settings(tmp_path, profile=None))
    with aws.count_writes() as writes:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="context-bucket")
        s3.list_buckets()
        aws.client("lambda", "eu-west-1").list_functions()
    assert writes.calls == [("s3", "CreateBucket")]
    assert aws.client("s3", "eu-west-1").meta.region_name == "eu-west-1"


#: Every task that builds or reads a layer: each takes --arch, and all but build-function --builder.
LAYER_TASKS = ("build_layer", "layer_report", "publish_layer", "attach", "verify", "deploy", "status")


@pytest.mark.parametrize("name", [*LAYER_TASKS, "build_function"])
def test_every_task_that_builds_or_reads_a_layer_takes_the_same_flags(name: str) -> None:
    task = getattr(tasks, name)
    params = inspect.signature(task.body).parameters
    assert params["arch"].default is None
    assert task.help["arch"] == tasks.ARCH_HELP["arch"]
    if name != "build_function":  # the function zip has no builder
        assert params["builder"].default is None
        assert task.help["builder"] == tasks.LAYER_HELP["builder"]


class _Made(Exception):
    """Stops a task right after it made its context (the flow itself is tested elsewhere)."""


@pytest.mark.parametrize("name", [*LAYER_TASKS, "build_function"])
def test_every_layer_task_makes_its_context_with_the_flags(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    def run_context(_c: Any, env: str, **flags: Any) -> RunContext:
        made.append({"env": env, **flags})
        raise _Made

    monkeypatch.setattr(tasks, "run_context", run_context)
    flags = {"arch": "arm64"} if name == "build_function" else {"arch": "arm64", "builder": "pip"}
    with pytest.raises(_Made):
        getattr(tasks, name).body(None, env="staging", **flags)
    assert len(made) == 1
    assert {k: made[0].get(k) for k in ("env", *flags)} == {"env": "staging", **flags}

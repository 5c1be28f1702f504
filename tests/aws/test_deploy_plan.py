"""One plan: status's verdict, the dry run and the real deploy's writes agree in every state.

``flow.deploy`` and ``flow.status`` run for real against moto; only the parts that
are not AWS are replaced: the build (artifacts made here), Terraform (targets and whether an
apply is needed) and the sandbox verify (its own tests live elsewhere).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from deploy import plan as plan_mod
from deploy import steps, terraform
from deploy.artifact import Artifact
from deploy.aws import attach as attach_mod
from deploy.aws import calls
from deploy.aws.publish import publish_layer, upload
from deploy.config import EnvConfig, ShareSettings, StateSettings, Targets
from deploy.context import RunContext
from deploy.errors import AuditError, ConfigError, DriftError, Interrupted, Terminated, TerraformError
from deploy.run import checks, infra, layer_source
from deploy.run import deploy as flow
from deploy.signals import sigterm_raises
from deploy.terraform.decision import InfraDecision
from tests.aws.conftest import REGION, alias_versions, create_function, make_artifact


class World:
    """What the replaced parts return; each test state changes it."""

    def __init__(self, env: EnvConfig, targets: Targets, layer: Artifact, code: Artifact) -> None:
        self.env = env
        self.targets = targets
        self.layer = layer
        self.code = code
        self.applied = True
        self.terraform_changes = False
        self.on_apply: Any = None
        self.applies = 0

    @property
    def ctx(self) -> RunContext:
        return RunContext.create(self.env)


@pytest.fixture
def world(
    env: EnvConfig,
    deployed: Targets,
    layer: Artifact,
    code: Artifact,
    monkeypatch: pytest.MonkeyPatch,
    s3: Any,
) -> World:
    s3.create_bucket(Bucket="state-bucket")
    w = World(
        dataclasses.replace(env, state=StateSettings(bucket="state-bucket", key="t.tfstate")), deployed, layer, code
    )

    def build_artifacts(
        _ctx: RunContext, *, remote_cache: bool, report: Any = None, defer_layer: bool = False, **_: Any
    ) -> tuple[Artifact, Artifact]:
        if report is not None:
            report.layer = {"identity": w.layer.identity, "source": "built"}
        return w.code, w.layer

    def load_targets(_env: EnvConfig, **_: Any) -> Targets:
        if not w.applied:
            raise TerraformError("no Terraform outputs: run `inv infra.apply`")
        return w.targets

    def infra_apply(_ctx: RunContext, **_: Any) -> Targets:
        w.applies += 1
        if w.on_apply is not None:
            w.on_apply()
        w.applied, w.terraform_changes = True, False
        return w.targets

    ok = SimpleNamespace(to_json=lambda: {"ok": True}, raise_for_failures=lambda: None)
    # The state bucket exists (above); hardening it is tests/aws/test_state_bucket.py's business.
    monkeypatch.setattr(infra, "_ensure_lock_bucket", lambda _env: None)
    # The host's prerequisites (Terraform, bwrap, python3.12) are tests/unit/test_preflight.py's business.
    monkeypatch.setattr(infra, "require_prerequisites", lambda *_a, **_k: None)
    monkeypatch.setattr(layer_source, "_build_artifacts", build_artifacts)
    monkeypatch.setattr(terraform, "load_targets", load_targets)
    monkeypatch.setattr(
        infra, "_terraform_needed", lambda _env, **_: InfraDecision(needed=w.terraform_changes, reason="test")
    )
    monkeypatch.setattr(infra, "infra_apply", infra_apply)
    monkeypatch.setattr(checks, "_verify_local", lambda *_a, **_k: ok)
    monkeypatch.setattr(checks, "_verify_deployed", lambda *_a, **_k: ok)
    return w


def observe(w: World) -> tuple[bool, bool, set[str], Any]:
    """(status says in sync, dry run says empty, functions the dry run would update, the real deploy's report)."""
    try:
        flow.status(w.ctx)
        in_sync = True
    except DriftError:
        in_sync = False
    with calls.count_writes() as dry_writes:
        dry = flow.deploy(w.ctx, dry_run=True)
    assert dry_writes.count == 0
    assert dry.plan is not None
    would = {f.name for f in dry.functions if f.status == "would update"}
    real = flow.deploy(w.ctx)
    return in_sync, bool(dry.plan["empty"]), would, real


def assert_agree(w: World, *, changes: bool, functions: set[str] | None = None) -> Any:
    in_sync, empty, would, real = observe(w)
    assert in_sync == empty == (not changes)
    assert (real.aws_write_calls == 0 and real.terraform.apply != "applied") == (not changes), real.aws_write_operations
    updated = {f.name for f in real.functions if f.status == "updated"}
    assert would == updated
    if functions is not None:
        assert updated == functions
    # After the deploy the state is in sync, and a rerun writes nothing.
    flow.status(w.ctx)
    again = flow.deploy(w.ctx)
    assert again.aws_write_calls == 0 and again.terraform.apply == "skipped"
    return real


def names(targets: Targets) -> set[str]:
    return {fn.name for fn in targets.functions}


def test_state_matrix(world: World, tmp_path: Path, lam: Any, role: str, old_layer_arn: str) -> None:
    w = world
    everything = names(w.targets)

    # fresh-ish: Terraform has created the functions, nothing of ours is deployed yet
    first = assert_agree(w, changes=True, functions=everything)
    assert first.publish[0]["published"] is True

    # in sync
    assert_agree(w, changes=False)

    # code changed
    w.code = make_artifact(tmp_path, "function", "def handler(event, context):\n    return 2\n")
    assert_agree(w, changes=True, functions=everything)

    # layer changed
    w.layer = make_artifact(tmp_path, "layer", "import json  # deps v2\n")
    real = assert_agree(w, changes=True, functions=everything)
    assert real.publish[0]["published"] is True

    # extra region added: a layer publish there, no function changes
    boto3.client("s3", region_name="us-west-2").create_bucket(
        Bucket="acme-west", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    w.env = dataclasses.replace(w.env, extra_regions={"us-west-2": "acme-west"})
    real = assert_agree(w, changes=True, functions=set())
    assert {p["region"] for p in real.publish if p["published"]} == {"us-west-2"}

    # share grant added: a permission on the existing version, no function changes
    w.env = dataclasses.replace(w.env, share=ShareSettings(accounts=("210987654321",)))
    real = assert_agree(w, changes=True, functions=set())
    assert "lambda:AddLayerVersionPermission" in real.aws_write_operations

    # Terraform changed $LATEST's configuration of one function (`inv infra.apply` ran): it is republished
    victim = sorted(everything)[0]
    lam.update_function_configuration(FunctionName=victim, MemorySize=512)
    real = assert_agree(w, changes=True, functions={victim})
    served = lam.get_function_configuration(FunctionName=victim, Qualifier="live")
    assert served["MemorySize"] == 512

    # Terraform has changes of its own (its fingerprint or plan says so): the deploy applies them,
    # which is a write even though no boto3 write call is made
    w.terraform_changes = True
    real = assert_agree(w, changes=True, functions=set())
    assert real.terraform.apply == "applied" and w.applies == 1 and real.aws_write_calls > 0  # the lock


def test_fresh_environment_plans_an_apply_then_everything(world: World, lam: Any) -> None:
    w = world
    w.applied, w.terraform_changes = False, True
    dry = flow.deploy(w.ctx, dry_run=True)
    assert dry.plan == plan_mod.unapplied(w.env).to_json()
    with pytest.raises(DriftError, match="terraform: apply"):
        flow.status(w.ctx)
    real = flow.deploy(w.ctx)
    assert real.terraform.apply == "applied"
    assert {f.status for f in real.functions} == {"updated"}
    flow.status(w.ctx)


def test_status_is_never_in_sync_while_latest_differs_from_live(
    world: World, lam: Any, s3: Any, tmp_path: Path
) -> None:
    """What a refused deploy used to leave: $LATEST with the new code, `live` on the old version."""
    w = world
    flow.deploy(w.ctx)
    first = sorted(names(w.targets))[0]
    other = make_artifact(tmp_path, "function", "left behind = True")
    upload(calls.client(w.env, "s3"), w.targets.bucket, other.s3_key, other)
    lam.update_function_code(FunctionName=first, S3Bucket=w.targets.bucket, S3Key=other.s3_key)
    with pytest.raises(DriftError, match=f"{first}: code"):
        flow.status(w.ctx)
    # $LATEST is the local code but `live` serves older code: still not in sync
    w.code = other
    with pytest.raises(DriftError) as err:
        flow.status(w.ctx)
    assert f"{first}: " in str(err.value) and "publish version" in str(err.value)
    assert_agree(w, changes=True)


def test_two_deploys_after_a_change_one_applies_the_other_finds_nothing(world: World, tmp_path: Path, lam: Any) -> None:
    """The second run read its plan before the first took the lock; under the lock it reads again."""
    w = world
    flow.deploy(w.ctx)
    w.code = make_artifact(tmp_path, "function", "def handler(event, context):\n    return 3\n")
    real_read = flow._read_plan
    reads = [0]
    others: list[list[str]] = []

    def read_plan(ctx: RunContext, **kw: Any) -> Any:
        reads[0] += 1
        result = real_read(ctx, **kw)
        if reads[0] == 1:  # the second run has its (stale) plan; the first run deploys now
            pipeline_deploy_other()
        return result

    def pipeline_deploy_other() -> None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(flow, "_read_plan", real_read)
            other = flow.deploy(w.ctx)
        assert {f.status for f in other.functions} == {"updated"}
        others.append(other.aws_write_operations)

    before_versions = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow, "_read_plan", read_plan)
        before_versions = alias_versions(lam, w.targets)
        second = flow.deploy(w.ctx)
    assert {f.status for f in second.functions} == {"unchanged"}
    # Exactly one new generation: the first run's, every alias on it.
    after = alias_versions(lam, w.targets)
    assert len(set(after.values())) == 1 and after != before_versions
    # The second run (whose counter also saw the first run's calls) wrote only its lock: create, delete.
    assert second.aws_write_operations == [*others[0], "s3:PutObject", "s3:DeleteObject"]


def test_plan_refuses_nothing_and_reads_only(world: World) -> None:
    w = world
    with calls.count_writes() as writes:
        plan = plan_mod.compute(w.env, w.targets, layer=w.layer, function=w.code)
    assert writes.count == 0 and not plan.empty
    assert plan.primary.publish and all(f.update_layers and f.alias_to == steps.NEW for f in plan.functions)
    assert plan.attach is None  # the layer version does not exist yet
    publish_layer(w.env, w.targets, w.layer)
    plan = plan_mod.compute(w.env, w.targets, layer=w.layer, function=w.code)
    assert isinstance(plan.attach, attach_mod.AttachPlan) and not plan.primary.publish


def test_targets_come_from_the_state_object_only_while_the_last_apply_stands(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terraform's outputs are read from the state object (no Terraform process) exactly when no apply
    is due; when one is, or with --skip-infra (no fingerprint was checked), Terraform answers."""
    w = world
    seen: list[bool] = []

    def load_targets(_env: EnvConfig, *, read_only: bool = False, **_: Any) -> Targets:
        seen.append(read_only)
        return w.targets

    monkeypatch.setattr(terraform, "load_targets", load_targets)
    flow.deploy(w.ctx, dry_run=True)
    assert seen == [True]
    w.terraform_changes = True
    flow.deploy(w.ctx, dry_run=True)
    flow.deploy(w.ctx, dry_run=True, apply_infra=False)
    assert seen == [True, False, False]


def test_unused_fixtures_are_real(role: str, old_layer_arn: str, lam: Any) -> None:
    create_function(lam, role, "acme-extra", [old_layer_arn])
    assert lam.get_alias(FunctionName="acme-extra", Name="live")["FunctionVersion"] == "1"
    assert REGION == "us-east-1"


def test_invoke_yaml_disagreeing_with_terraform_is_refused_before_any_write(world: World) -> None:
    """What `INVOKE_DEPLOY_ARCHITECTURE=arm64 inv deploy` did to x86_64 functions: now refused, naming both."""
    w = world
    w.env = dataclasses.replace(w.env, architecture="arm64")
    with calls.count_writes() as writes, pytest.raises(ConfigError) as err:
        flow.deploy(w.ctx)
    assert "invoke.yaml says python3.12/arm64" in str(err.value)
    assert "deploy_targets.functions.api" in str(err.value) and "x86_64" in str(err.value)
    assert writes.count == 0
    with pytest.raises(ConfigError, match=r"invoke\.yaml says"):
        flow.status(w.ctx)


def test_terraform_per_function_architecture_decides(world: World) -> None:
    w = world
    arm = tuple(dataclasses.replace(fn, architecture="arm64") for fn in w.targets.functions)
    w.targets = dataclasses.replace(w.targets, functions=arm)
    with calls.count_writes() as writes, pytest.raises(ConfigError, match=r"is python3\.12/arm64"):
        flow.deploy(w.ctx)
    assert writes.count == 0
    # invoke.yaml agreeing with Terraform, but the layer was built for x86_64: refused too
    w.env = dataclasses.replace(w.env, architecture="arm64")
    with pytest.raises(ConfigError, match=r"layer .* is built for python3.12/x86_64"):
        flow.deploy(w.ctx)


def test_layer_version_incompatible_with_a_function_is_refused(world: World, lam: Any) -> None:
    w = world
    # Someone published our bytes as an arm64-only version: the plan finds it by CodeSha256 and refuses it.
    lam.publish_layer_version(
        LayerName=w.targets.layer_name,
        Content={"ZipFile": w.layer.path.read_bytes()},
        CompatibleRuntimes=["python3.12"],
        CompatibleArchitectures=["arm64"],
    )
    with calls.count_writes() as writes, pytest.raises(ConfigError, match=r"compatible with .*arm64.*not with"):
        flow.deploy(w.ctx)
    assert writes.count == 0


def test_per_function_platform_is_read_from_terraform_outputs() -> None:
    from deploy.terraform import targets_from_outputs

    fn = {"name": "f", "handler": "h", "runtime": "python3.12", "architectures": ["arm64"], "region": "eu-west-1"}
    outputs = {
        "deploy_targets": {
            "env": "test",
            "region": "eu-west-1",
            "bucket": "b",
            "layer_name": "l",
            "runtime": "python3.12",
            "architecture": "arm64",
            "functions": {k: {**fn, "name": k} for k in ("api", "cleanup", "db_sync", "eval_runbook_worker")},
        }
    }
    parsed = targets_from_outputs(outputs, "test")
    assert {(f.runtime, f.architecture, f.region) for f in parsed.functions} == {("python3.12", "arm64", "eu-west-1")}
    outputs["deploy_targets"]["functions"]["api"]["architectures"] = ["x86_64", "arm64"]
    with pytest.raises(TerraformError, match=r"functions\.api\.architectures"):
        targets_from_outputs(outputs, "test")


def test_size_budget_counts_each_functions_layers_before_any_write(world: World) -> None:
    w = world
    w.layer = dataclasses.replace(w.layer, unzipped_size=262_144_000)  # with the function's bytes: over the limit
    with calls.count_writes() as writes, pytest.raises(AuditError, match=r"size budget exceeded"):
        flow.deploy(w.ctx)
    assert writes.count == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(
    "phase",
    ["before publish", "during staging", "while aliases move", "during verify"],
)
def test_signal_at_each_phase_of_deploy_leaves_one_generation(
    world: World, tmp_path: Path, lam: Any, inject: Any, monkeypatch: pytest.MonkeyPatch, sig: int, phase: str
) -> None:
    """`inv deploy` interrupted anywhere: every alias serves what it served, the lock is released, and the
    error says what was restored (exit 130 for SIGINT, 143 for SIGTERM)."""
    w = world
    flow.deploy(w.ctx)
    before = alias_versions(lam, w.targets)
    latest_before = {
        fn.name: lam.get_function_configuration(FunctionName=fn.name)["CodeSha256"] for fn in w.targets.functions
    }
    w.code = make_artifact(tmp_path, "function", "def handler(event, context):\n    return 'next'\n")
    w.layer = make_artifact(tmp_path, "layer", "import json  # deps next\n")

    def kill(**_: Any) -> None:
        os.kill(os.getpid(), sig)

    operation = {
        "before publish": "PublishLayerVersion",
        "during staging": "UpdateFunctionConfiguration",
        "while aliases move": "UpdateAlias",
    }.get(phase)
    if operation is not None:
        fired = [False]
        lock = threading.Lock()

        def once(**kw: Any) -> None:
            # Atomic: several workers reach UpdateAlias at once, and two signals (a double Ctrl-C)
            # would interrupt the wait for the calls in flight, which is another test's case.
            with lock:
                first, fired[0] = not fired[0], True
            if first:
                kill(**kw)

        inject("lambda", operation, once)
    else:
        ok = SimpleNamespace(to_json=lambda: {"ok": True}, raise_for_failures=lambda: None)
        verified = [0]

        def verify_interrupted(*_a: Any, **_k: Any) -> Any:
            verified[0] += 1
            if verified[0] == 1:
                kill()
                signal.pause()
            return ok

        monkeypatch.setattr(checks, "_verify_deployed", verify_interrupted)
    expected = Terminated if sig == signal.SIGTERM else Interrupted
    with sigterm_raises(), pytest.raises(expected) as err:
        flow.deploy(w.ctx)
    assert err.value.exit_code == (143 if sig == signal.SIGTERM else 130)
    assert alias_versions(lam, w.targets) == before
    latest_after = {
        fn.name: lam.get_function_configuration(FunctionName=fn.name)["CodeSha256"] for fn in w.targets.functions
    }
    assert latest_after == latest_before
    # The lock was released: the next deploy runs (and converges) without waiting.
    assert {f.status for f in flow.deploy(w.ctx, lock_timeout=0).functions} == {"updated"}

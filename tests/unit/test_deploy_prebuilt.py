"""`inv deploy --prebuilt` (CI's deploy job) builds nothing: it takes the handed-over artifacts, checked against
their manifests, or stops with a clear error before any AWS call."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from deploy import build
from deploy.config import Paths
from deploy.context import RunContext
from deploy.errors import BuildError
from deploy.run import deploy as flow
from deploy.run import infra, layer_source
from tests.sample_app import ROOT, sample_env
from tests.unit.no_aws import forbid_aws
from tests.unit.test_ci_artifacts import _artifact


class Planning(Exception):
    """Raised where the deploy would go on to read its plan from AWS."""


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout's lock and settings (enough for the layer's identity), with nothing built, and building
    forbidden."""
    root = tmp_path / "checkout"
    (root / "backend").mkdir(parents=True)
    for name in ("requirements.txt", "poetry.lock", "pyproject.toml", "VERSION"):
        shutil.copy2(ROOT / "backend" / name, root / "backend" / name)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("--prebuilt built something")

    for module, name in (
        (build, "build_layer"),
        (build, "build_function"),
        (layer_source, "obtain_layer"),
        (layer_source, "_build_artifacts"),
    ):
        monkeypatch.setattr(module, name, never)
    return root


def staging(root: Path) -> RunContext:
    return RunContext.create(dataclasses.replace(sample_env("staging"), paths=Paths(root=root)))


def test_a_missing_artifact_stops_the_deploy_before_any_aws_call(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = forbid_aws(monkeypatch, tmp_path)
    _artifact(checkout / ".build" / "functions", "function", b"function bytes")  # the layer did not come along
    with pytest.raises(BuildError, match="--prebuilt: no layer artifact for identity"):
        flow.deploy(staging(checkout), prebuilt=True)
    assert attempts == []


def test_the_handed_over_artifacts_are_deployed_as_they_are(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = staging(checkout)
    identity = ctx.layer_plan.digest
    layer = _artifact(checkout / ".build" / "layers", "layer", b"layer bytes")
    # A layer build names its files by identity; the hand-over keeps those names.
    layer = dataclasses.replace(layer, identity=identity)
    layer.write_manifest()
    function = _artifact(checkout / ".build" / "functions", "function", b"function bytes")
    attempts = forbid_aws(monkeypatch, tmp_path)

    planned: dict[str, Any] = {}

    def plan(ctx: Any, **kwargs: Any) -> None:
        planned.update(kwargs)
        raise Planning

    monkeypatch.setattr(infra, "require_prerequisites", lambda *a, **kw: None)  # reads AWS: not here
    monkeypatch.setattr(flow, "_read_plan", plan)
    reports: list[Any] = []
    monkeypatch.setattr(flow, "emit_json", reports.append)
    with pytest.raises(Planning):
        flow.deploy(ctx, prebuilt=True, as_json=True)
    assert (planned["function"].path, planned["layer"].path) == (function.path, layer.path)
    assert attempts == []
    [report] = reports
    assert report["function"]["sha256"] == function.sha256
    assert report["layer"]["sha256"] == layer.sha256
    assert report["layer"]["source"].startswith("prebuilt")


def test_the_task_flag_reaches_the_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from invoke.config import Config
    from invoke.context import Context

    import tasks

    seen: dict[str, Any] = {}
    monkeypatch.setattr(flow, "deploy", lambda ctx, **kwargs: seen.update(kwargs))
    settings = yaml.safe_load((ROOT / "invoke.yaml").read_text())["deploy"]
    context = Context(config=Config(overrides={"deploy": settings}))
    tasks.deploy(context, env="staging", prebuilt=True)
    assert seen["prebuilt"] is True
    tasks.deploy(context, env="staging")
    assert seen["prebuilt"] is False

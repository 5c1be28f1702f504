"""The per-function vocabulary: one step record, one outcome, one status enum whose values are the
strings the JSON report has always carried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from deploy import report
from deploy.aws.transaction import TransactionReport
from deploy.config import FunctionTarget
from deploy.progress import Event, State
from deploy.run import show
from deploy.steps import NEW, FunctionSteps, Outcome, Status, Step, planned
from tests.targets import make_targets

#: What the report's consumers (CI steps, the job summary) have read since before the enum.
REPORT_STRINGS = {"unchanged", "updated", "would update", "rolled_back", "would roll back", "left", "failed"}


def steps(**kw: object) -> FunctionSteps:
    fields: dict[str, object] = {
        "name": "acme-test-api",
        "key": "api",
        "update_code": True,
        "update_layers": False,
        "publish_version": True,
        "old_layers": (),
        "new_layers": ("arn:aws:lambda:us-east-1:123456789012:layer:deps:2",),
        "alias_from": "3",
    }
    return FunctionSteps(**{**fields, **kw})  # type: ignore[arg-type]


def test_the_status_enum_round_trips_through_the_json_report_unchanged(tmp_path: Path) -> None:
    assert {s.value for s in Status} == REPORT_STRINGS
    outcomes = [Outcome(name=f"fn-{i}", status=s, old_version="1", new_version="2") for i, s in enumerate(Status)]
    deploy = report.DeployReport(env="test", dry_run=False, functions=outcomes)
    path, md = report.write_report(deploy.to_json(), tmp_path / "report.json")
    back = json.loads(path.read_text())
    assert [f["status"] for f in back["functions"]] == [s.value for s in Status]
    assert [Status(f["status"]) for f in back["functions"]] == list(Status)
    assert set(back["functions"][0]) == {"name", "status", "old_version", "new_version", "detail"}
    assert "| fn-2 | would update | 1 → 2 |" in md.read_text()
    # The transaction's entry keeps its own key for the same value.
    txn = json.loads(json.dumps(TransactionReport(committed=False, functions=tuple(outcomes)).to_json()))
    assert [f["outcome"] for f in txn["functions"]] == [s.value for s in Status]


def test_one_record_plans_describes_and_reports_a_function() -> None:
    both = steps(update_layers=True)
    assert both.steps() == (Step.CODE, Step.LAYERS, Step.PUBLISH, Step.ACTIVE, Step.ALIAS)
    assert both.describe() == "code, layer, publish version; live 3 → (new)"
    assert both.to_json() == {
        "name": "acme-test-api",
        "key": "api",
        "update_code": True,
        "swap_layer": True,
        "publish_version": True,
        "alias_from": "3",
        "alias_to": NEW,
        "provisioned_concurrency": 0,
        "provisioned_gb_seconds_per_hour": 0.0,
    }
    stale = steps(update_code=False)  # $LATEST matches, the alias serves an older version
    assert stale.steps() == (Step.PUBLISH, Step.ACTIVE, Step.ALIAS) and stale.changed
    same = steps(update_code=False, publish_version=False)
    assert same.steps() == () and not same.changed and same.describe() == "unchanged" and same.alias_to == "3"
    dry, nothing = planned([both], dry_run=True), planned([same], dry_run=False)
    assert [(o.status, o.new_version) for o in dry] == [(Status.WOULD_UPDATE, NEW)]
    assert [(o.status, o.new_version) for o in nothing] == [(Status.UNCHANGED, "3")]


def test_provisioned_concurrency_is_a_step_after_active_and_shows_its_gb_seconds() -> None:
    """AWS bills provisioned concurrency by configured concurrency * allocated memory * time:
    5 environments of 512 MB are 2.5 GB-s every second, 9,000 GB-s an hour."""
    warm = steps(provisioned_concurrency=5, memory_mb=512)
    assert warm.steps() == (Step.CODE, Step.PUBLISH, Step.ACTIVE, Step.PROVISION, Step.ALIAS)
    assert warm.provisioned_gb_seconds_per_hour == 9000.0
    assert warm.describe() == (
        "code, publish version, provisioned concurrency 5 × 512 MB = 9,000 GB-s per hour; live 3 → (new)"
    )
    assert warm.to_json()["provisioned_gb_seconds_per_hour"] == 9000.0
    # Nothing published, nothing to warm: an unchanged function costs no new environments.
    assert steps(provisioned_concurrency=5, memory_mb=512, update_code=False, publish_version=False).steps() == ()


def test_a_function_line_is_ticked_by_the_done_event_not_by_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a terminal (CI) each function's line is printed once, when it ends."""
    screen = Console(width=100, record=True, force_terminal=False, soft_wrap=True, highlight=False)
    monkeypatch.setattr(report, "console", screen)
    functions = tuple(FunctionTarget(key=n, name=n, handler="handler.handler") for n in ("fn-a", "fn-b"))
    targets = make_targets("test", functions, layer_name="deps")
    with show._attach_lines(targets) as emit:
        for step in (Step.CODE, Step.PUBLISH):
            emit(Event(function="fn-a", step=step, state=State.STARTED))
            emit(Event(function="fn-a", step=step, state=State.DONE))
        emit(Event(function="fn-a", step=Step.ALIAS, state=State.STARTED, detail="moving alias live 1 → 2"))
        assert screen.export_text(clear=False) == ""  # started is not done
        emit(Event(function="fn-a", step=Step.ALIAS, state=State.DONE))
        emit(Event(function="fn-b", step=Step.LAYERS, state=State.FAILED, detail="failed: fn-b: bad layer"))
        emit(Event(function=None, step=Step.UPLOAD, state=State.STARTED, detail="uploading function 1a2b"))
    assert screen.export_text().splitlines() == [
        "✓ fn-a: code updated, version published, alias moved",
        "✗ fn-b: failed: fn-b: bad layer",
        "› uploading function 1a2b",
    ]

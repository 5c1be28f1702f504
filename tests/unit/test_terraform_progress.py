"""Terraform's -json events as one progress line, its full output in a log file shown only on
failure (last lines + path, exit 7), and plain one-line-per-step output without a terminal."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from deploy import report, terraform
from deploy import terraform as tfm
from deploy.context import RunContext
from deploy.errors import DriftError, TerraformError
from deploy.run import infra
from deploy.terraform import events
from tests.unit.test_terraform import env_config, fake_terraform, runner


def event(kind: str, message: str, **fields: Any) -> str:
    return json.dumps({"@level": "info", "@message": message, "@module": "terraform.ui", "type": kind, **fields})


def hook(kind: str, address: str, action: str, message: str) -> str:
    return event(kind, message, hook={"resource": {"addr": address}, "action": action})


BUCKET, FUNCTION = "aws_s3_bucket.artifacts", "module.api.aws_lambda_function.this"
PLAN = [
    event("version", "Terraform 1.11.4", terraform="1.11.4", ui="1.2"),
    event("planned_change", f"{BUCKET}: Plan to create", change={"resource": {"addr": BUCKET}, "action": "create"}),
    event("planned_change", f"{FUNCTION}: Plan to create", change={"resource": {"addr": FUNCTION}, "action": "create"}),
    event(
        "change_summary",
        "Plan: 2 to add, 0 to change, 0 to destroy.",
        changes={"add": 2, "change": 0, "import": 0, "remove": 0, "operation": "plan"},
    ),
    hook("apply_start", BUCKET, "create", f"{BUCKET}: Creating..."),
    hook("apply_complete", BUCKET, "create", f"{BUCKET}: Creation complete after 0s"),
    hook("apply_start", FUNCTION, "create", f"{FUNCTION}: Creating..."),
]
SUCCESS = [
    *PLAN,
    hook("apply_complete", FUNCTION, "create", f"{FUNCTION}: Creation complete after 1s"),
    event(
        "change_summary",
        "Apply complete! Resources: 2 added, 0 changed, 0 destroyed.",
        changes={"add": 2, "change": 0, "import": 0, "remove": 0, "operation": "apply"},
    ),
]
FAILURE = [
    *PLAN,
    hook("apply_errored", FUNCTION, "create", f"{FUNCTION}: Creation errored after 1s"),
    json.dumps(
        {
            "@level": "error",
            "@message": "Error: creating Lambda Function (bluemoxon-local-api): AccessDeniedException",
            "type": "diagnostic",
            "diagnostic": {
                "severity": "error",
                "summary": "creating Lambda Function (bluemoxon-local-api): AccessDeniedException",
                "detail": "User is not authorized to perform: lambda:CreateFunction",
                "address": FUNCTION,
            },
        }
    ),
]


def script_printing(tmp_path: Path, lines: list[str], code: int) -> Path:
    body = f"if argv[0] == 'apply':\n    print({chr(10).join(lines)!r})\n    sys.exit({code})\n"
    return fake_terraform(tmp_path / "bin", body)


def apply_with_progress(tmp_path: Path, script: Path) -> tfm.Progress:
    tf = runner(tmp_path, script)
    env = env_config(tmp_path)
    return infra._terraform_with_progress(
        RunContext.create(env), "apply", lambda log, ev: tfm.apply(tf, log=log, events=ev)
    )


def logs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".build" / "logs").glob("*-terraform-apply-local.log"))


def test_progress_line_counts_planned_done_and_in_progress() -> None:
    counts = events.Progress()
    assert counts.line() == "planning"
    for line in PLAN:
        parsed = events.parse(line)
        assert parsed is not None
        counts.feed(parsed)
    assert counts.line() == f"2 to add, 0 to change, 0 to destroy; 1/2 done; creating {FUNCTION}"


def test_a_diagnostic_reads_as_terraform_prints_it() -> None:
    parsed = events.parse(FAILURE[-1])
    assert parsed is not None
    assert events.text(parsed).splitlines() == [
        "Error: creating Lambda Function (bluemoxon-local-api): AccessDeniedException",
        "User is not authorized to perform: lambda:CreateFunction",
        f"  with {FUNCTION},",
    ]
    assert events.parse("Initializing the backend...") is None


def test_a_failure_mid_apply_names_the_last_lines_and_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TerraformError) as err:
        apply_with_progress(tmp_path, script_printing(tmp_path, FAILURE, 1))
    assert err.value.exit_code == 7
    message = str(err.value)
    [log] = logs(tmp_path)
    assert f"full log: {log}" in message
    assert "User is not authorized to perform: lambda:CreateFunction" in message  # the last lines
    text = log.read_text()
    assert f"{BUCKET}: Creation complete after 0s" in text  # everything, not just the tail
    assert "$ terraform workspace select" in text and "$ terraform apply" in text
    assert "Creating..." not in capsys.readouterr().err  # the terminal got the progress line only


def test_success_without_a_terminal_is_one_line_per_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counts = apply_with_progress(tmp_path, script_printing(tmp_path, SUCCESS, 0))
    assert (counts.done, counts.total) == (2, 2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "› terraform apply (local): 2 to add, 0 to change, 0 to destroy"
    assert lines[1].startswith("✓ terraform apply (local): 2 added, 0 changed, 0 destroyed in ")
    assert len(lines) == 2
    assert "log" not in "\n".join(lines)  # the log's path is news only when something failed
    assert logs(tmp_path)


def test_live_progress_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "console", Console(force_terminal=True))
    monkeypatch.delenv("CI", raising=False)
    assert report.live()
    monkeypatch.setenv("CI", "true")
    assert not report.live()
    monkeypatch.setattr(report, "console", Console(force_terminal=False))
    monkeypatch.delenv("CI")
    assert not report.live()


def test_names_are_shortened_in_the_middle() -> None:
    assert report.short("bluemoxon-local-eval-runbook-worker") == "bluemoxon-loc…runbook-worker"
    assert len(report.short("bluemoxon-local-eval-runbook-worker")) == 28
    assert report.short("bluemoxon-local-api") == "bluemoxon-local-api"


def test_infra_plan_lists_what_would_change_not_ignored_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    drift = event(
        "resource_drift",
        f"{FUNCTION}: Drift detected (update)",
        change={"resource": {"addr": FUNCTION}, "action": "update"},
    )
    lines = [PLAN[0], drift, *PLAN[1:4]]
    body = f"if argv[0] == 'plan':\n    print({chr(10).join(lines)!r})\n    sys.exit(2)\n"
    fake = runner(tmp_path, fake_terraform(tmp_path / "bin", body))
    env = dataclasses.replace(env_config(tmp_path), emulator=None, endpoint_url=None)  # nothing to reach
    monkeypatch.setattr(terraform, "terraform_for", lambda _env: fake)
    assert infra.infra_plan(RunContext.create(env)) is True
    err = capsys.readouterr().err
    assert f"  {BUCKET}: Plan to create" in err and f"  {FUNCTION}: Plan to create" in err
    assert "Drift detected" not in err  # it is in the log
    assert "Drift detected" in logs_of(tmp_path, "plan")[0].read_text()
    with pytest.raises(DriftError):
        infra.infra_plan(RunContext.create(env), detailed_exitcode=True)


def logs_of(tmp_path: Path, command: str) -> list[Path]:
    return sorted((tmp_path / ".build" / "logs").glob(f"*-terraform-{command}-local.log"))


def test_a_saved_plans_apply_counts_from_its_own_summary() -> None:
    """`terraform apply PLANFILE` sends no plan summary: the apply's summary gives the counts."""
    progress = events.Progress()
    for line in [line for line in SUCCESS if '"operation": "plan"' not in line]:
        parsed = events.parse(line)
        if parsed is not None:
            progress.feed(parsed)
    assert (progress.add, progress.change, progress.remove) == (2, 0, 0)
    assert progress.done == 2

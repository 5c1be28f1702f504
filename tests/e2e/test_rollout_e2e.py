"""End to end on the emulator: a canary rollout through the real CLI, rolled back automatically when an
alarm goes to ALARM mid-hold, then a canary that holds and ends wholly on the new version. moto serves the
alias routing config and CloudWatch alarms; the hold is the product's own (the settings refuse an interval
under the verify's 60 s timeout), so the test waits for the hold's lines, never for a time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.errors import RolloutAborted
from tests.e2e.test_deploy_local import Project, new_project

pytestmark = [pytest.mark.e2e, pytest.mark.network]
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 160

ALARM = "api-errors"
ROLLOUT = f"""      rollout:
        strategy: canary
        percent: 10
        interval: 60
        alarms: [{ALARM}]
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    proj = new_project(tmp_path_factory.mktemp("rollout"))
    try:
        proj.inv("deploy", "--env", "local")  # all at once: the first deploy has nothing to shift from
        yield proj
    finally:
        proj.inv("local.down", check=False)


def _commit(proj: Project, message: str) -> None:
    proj.git("-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "commit", "-qam", message)


def _aliases(proj: Project) -> dict[str, tuple[str, dict[str, float]]]:
    lam = proj.client("lambda")
    out = {}
    for fn in lam.list_functions()["Functions"]:
        alias = lam.get_alias(FunctionName=fn["FunctionName"], Name="live")
        out[fn["FunctionName"]] = (
            alias["FunctionVersion"],
            alias.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {},
        )
    return out


def _deploy_watching(proj: Project, on_hold: Any) -> tuple[int, str]:
    """`inv deploy --env local`, calling ``on_hold`` once at the first hold line; its exit code and output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "deploy", "--env", "local"],
        cwd=proj.root,
        env=proj.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    called = False
    for line in proc.stdout:
        lines.append(line)
        if not called and " s left; alarms OK" in line:
            called = True
            on_hold()
    return proc.wait(timeout=600), "".join(lines)


def test_a_canary_is_rolled_back_by_an_alarm_then_a_clean_canary_ends_on_the_new_version(deployed: Project) -> None:
    proj = deployed
    cloudwatch = proj.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    config = proj.root / "invoke.yaml"
    text = config.read_text()
    anchor = "      verify:\n        remote: false\n"
    assert anchor in text
    config.write_text(text.replace(anchor, anchor + ROLLOUT, 1))
    handler = proj.root / "backend" / "lambdas" / "cleanup" / "handler.py"
    handler.write_text(handler.read_text() + "\n# canary one\n")
    _commit(proj, "canary one")
    before = _aliases(proj)
    assert all(not weights for _, weights in before.values())

    seen_mid: dict[str, Any] = {}

    def alarm() -> None:
        # Mid-canary: every alias still on its old version, 10 % on the new one; Terraform sees no drift.
        seen_mid.update(_aliases(proj))
        seen_mid["plan"] = proj.inv("infra.plan", "--env", "local", "--detailed-exitcode", check=False).returncode
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="e2e: errors")

    code, out = _deploy_watching(proj, alarm)
    assert code == RolloutAborted.exit_code, out
    assert f"alarm {ALARM} in ALARM" in out
    assert seen_mid.pop("plan") == 0
    for name, (version, weights) in seen_mid.items():
        assert version == before[name][0] and list(weights.values()) == [0.1], (name, version, weights)
    assert _aliases(proj) == before  # every alias back, no weight left

    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="e2e: quiet")
    handler.write_text(handler.read_text() + "\n# canary two\n")
    _commit(proj, "canary two")
    code, out = _deploy_watching(proj, lambda: None)
    assert code == 0, out
    after = _aliases(proj)
    for name, (version, weights) in after.items():
        assert int(version) > int(before[name][0]) and weights == {}, (name, version, weights)
    assert proj.inv("infra.plan", "--env", "local", "--detailed-exitcode", check=False).returncode == 0
    # The lock was released by both runs: a status reads at once.
    assert proj.inv("status", "--env", "local").returncode == 0

"""End to end on the emulator, day two: `inv invoke` (the built zips, and --deployed: the live alias's bytes)
and `inv logs` (seeded events, the filter, a function that never logged, --follow stopped by Ctrl-C),
through the real CLI in a throwaway copy of the repository. One deploy serves every test here."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.errors import ConfigError, HandlerError
from tests.e2e.test_deploy_local import Project, new_project

pytestmark = [pytest.mark.e2e, pytest.mark.network]
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 155


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    proj = new_project(tmp_path_factory.mktemp("daytwo"))
    try:
        proj.inv("deploy", "--env", "local")
        yield proj
    finally:
        proj.inv("local.down", check=False)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_invoke_runs_the_built_zips_with_a_smoke_event_a_file_or_stdin(deployed: Project, tmp_path: Path) -> None:
    by_name = deployed.inv("invoke", "--env", "local", "--function", "cleanup", "--event", "dry-run-all")
    answer = _json(by_name)
    assert (answer["action"], answer["dry_run"], answer["deleted"]) == ("all", True, 0)
    assert "the built zips (function " in by_name.stderr and "in the sandbox, python3.12" in by_name.stderr
    assert "event: smoke event 'dry-run-all' from invoke.yaml" in by_name.stderr
    assert "› init " in by_name.stderr and " ms, duration " in by_name.stderr
    # The handler's logger.info, as Lambda's runtime formats it: level, time, request id, message.
    info = next(line for line in by_name.stderr.splitlines() if line.startswith("[INFO]\t"))
    assert len(info.split("\t")) == 4 and "cleanup finished" in info

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "orphans", "dry_run": True}))
    from_file = _json(deployed.inv("invoke", "--env", "local", "--function", "cleanup", "--event", str(event)))
    assert from_file["action"] == "orphans"

    stdin = subprocess.run(
        [sys.executable, "-m", "invoke", "invoke", "--env", "local", "--function", "cleanup", "--event", "-"],
        cwd=deployed.root,
        env=deployed.env,
        input='{"action": "stale", "dry_run": true}',
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert stdin.returncode == 0, stdin.stderr
    assert json.loads(stdin.stdout)["action"] == "stale" and "event: stdin" in stdin.stderr


def test_a_handler_error_exits_with_its_type_message_and_traceback(deployed: Project, tmp_path: Path) -> None:
    event = tmp_path / "bogus.json"
    event.write_text('{"action": "bogus"}')
    failed = deployed.inv("invoke", "--env", "local", "--function", "cleanup", "--event", str(event), check=False)
    assert failed.returncode == HandlerError.exit_code, failed.stderr
    assert "error: bluemoxon-local-cleanup raised ValueError: unknown cleanup action 'bogus'" in failed.stderr
    assert 'File "/var/task/lambdas/cleanup/handler.py"' in failed.stderr
    assert _json(failed)["errorType"] == "ValueError"  # Lambda's error document on stdout


def test_bad_invoke_inputs_are_refused_before_anything_runs(deployed: Project, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"action": "all",\n "dry_run": tru}\n')
    refused = deployed.inv("invoke", "--env", "local", "--function", "cleanup", "--event", str(bad), check=False)
    assert refused.returncode == ConfigError.exit_code
    assert f"event file {bad} is not JSON: line 2, column 13" in refused.stderr
    assert refused.stdout == "" and "sandbox" not in refused.stderr

    missing = deployed.inv("invoke", "--env", "local", "--function", "cleanup", "--event", "nope.json", check=False)
    assert missing.returncode == ConfigError.exit_code
    assert "--event 'nope.json': no such file, and no smoke event of that name for cleanup" in missing.stderr

    typo = deployed.inv("invoke", "--env", "local", "--function", "cleanpu", check=False)
    assert typo.returncode == ConfigError.exit_code
    assert "unknown function 'cleanpu'; did you mean 'cleanup'?" in typo.stderr
    assert "(functions: api, cleanup, db_sync, eval_runbook_worker)" in typo.stderr

    typo_deployed = deployed.inv("invoke", "--env", "local", "--function", "ap", "--deployed", check=False)
    assert typo_deployed.returncode == ConfigError.exit_code and "did you mean 'api'?" in typo_deployed.stderr


def test_invoke_deployed_on_the_emulator_runs_the_alias_bytes_checked(deployed: Project) -> None:
    result = deployed.inv("invoke", "--env", "local", "--function", "api", "--event", "health", "--deployed")
    answer = _json(result)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "ok"
    live = deployed.client("lambda").get_function_configuration(FunctionName="bluemoxon-local-api", Qualifier="live")
    assert "its Lambda only echoes the event back" in result.stderr
    assert f"(version {live['Version']}, CodeSha256 {live['CodeSha256']}, checked; 1 layer(s))" in result.stderr


# ----------------------------------------------------------------------------- logs


def _seed(proj: Project, function: str, *messages: str, group: bool = True) -> None:
    logs = proj.client("logs")
    name = f"/aws/lambda/bluemoxon-local-{function}"
    if group and not logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]:
        logs.create_log_group(logGroupName=name)
    stream = f"2026/12/03/[2]{len(messages)}{int(time.time() * 1000)}"
    logs.create_log_stream(logGroupName=name, logStreamName=stream)
    start = int(time.time() * 1000) - 60_000
    logs.put_log_events(
        logGroupName=name,
        logStreamName=stream,
        logEvents=[{"timestamp": start + i, "message": m} for i, m in enumerate(messages)],
    )


def test_logs_print_seeded_events_in_order_and_filter_them(deployed: Project) -> None:
    _seed(
        deployed,
        "cleanup",
        "START RequestId: 6f1e0c9a-0001 Version: 2",
        "[INFO]\t2026-12-03T15:00:00.000Z\t6f1e0c9a-0001\tcleanup finished: {'deleted': 0}",
        "[ERROR]\t2026-12-03T15:00:00.001Z\t6f1e0c9a-0001\tS3 said no",
        "END RequestId: 6f1e0c9a-0001",
    )
    shown = deployed.inv("logs", "--env", "local", "--function", "cleanup", "--since", "1h")
    lines = shown.stdout.splitlines()
    assert [line.split(" ", 1)[1].split("\t")[0] for line in lines] == [
        "START RequestId: 6f1e0c9a-0001 Version: 2",
        "[INFO]",
        "[ERROR]",
        "END RequestId: 6f1e0c9a-0001",
    ]
    assert "6f1e0c9a-0001\tS3 said no" in lines[2]
    errors = deployed.inv("logs", "--env", "local", "--function", "cleanup", "--since", "1h", "--filter", "ERROR")
    assert [line.split("\t")[-1] for line in errors.stdout.splitlines()] == ["S3 said no"]


def test_logs_of_a_function_that_never_logged_and_bad_flags(deployed: Project) -> None:
    logs = deployed.client("logs")
    group = "/aws/lambda/bluemoxon-local-db-sync"
    if logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.delete_log_group(logGroupName=group)  # as before its first invocation
    none = deployed.inv("logs", "--env", "local", "--function", "db_sync")
    assert none.stdout == ""
    assert f"{group} does not exist yet: bluemoxon-local-db-sync has not logged anything" in none.stderr

    since = deployed.inv("logs", "--env", "local", "--function", "api", "--since", "10x", check=False)
    assert since.returncode == ConfigError.exit_code and "--since '10x' is not a duration" in since.stderr
    typo = deployed.inv("logs", "--env", "local", "--function", "db-sync", check=False)
    assert typo.returncode == ConfigError.exit_code and "did you mean 'db_sync'?" in typo.stderr


#: Only a guard against a hung test, never a measurement: the lines arrive within a poll or two.
SAFETY_S = 300.0


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout, line by line, read by a thread (a blocked read cannot hang the test)."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def test_logs_follow_prints_new_events_and_ctrl_c_exits_0(deployed: Project) -> None:
    _seed(deployed, "eval_runbook_worker".replace("_", "-"), "[INFO]\tT\t7a7a-0001\tbefore follow")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "logs", "--env", "local", "--function", "eval_runbook_worker", "--follow"],
        cwd=deployed.root,
        env=deployed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _lines(proc)
        first = lines.get(timeout=SAFETY_S)  # waits until the follow loop printed the seeded event
        assert first.rstrip().endswith("7a7a-0001\tbefore follow")
        _seed(deployed, "eval-runbook-worker", "[INFO]\tT\t7a7a-0002\twhile following")
        second = lines.get(timeout=SAFETY_S)
        assert second.rstrip().endswith("7a7a-0002\twhile following")
        os.kill(proc.pid, signal.SIGINT)
        err = proc.stderr.read() if proc.stderr is not None else ""
        proc.wait(timeout=SAFETY_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped after 2 event(s)" in err

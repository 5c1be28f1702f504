"""``inv logs`` below the task, against moto's Logs API: events in time order with request id and level
kept, the filter, a function that never logged, ``--since`` refused when malformed, and ``--follow``
driven by an injected clock and sleep (no real waiting), stopped by Ctrl-C or a poll count."""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

import boto3
import pytest

from deploy.aws import logs
from deploy.config import EnvConfig, FunctionTarget
from deploy.context import RunContext
from deploy.errors import ConfigError
from deploy.run import day_two
from tests.targets import make_targets

REGION = "us-east-1"
NAME = "acme-test-api"
GROUP = f"/aws/lambda/{NAME}"
#: CloudWatch (and moto) refuse events more than 2 hours ahead or 14 days behind the real clock, so the
#: seeded times are near it; nothing asserted depends on when the test runs.
NOW_MS = (int(time.time()) // 60 - 10) * 60_000
TARGETS = make_targets("test", (FunctionTarget(key="api", name=NAME, handler="h.handler"),))
ENV = EnvConfig(name="test", region=REGION)


@pytest.fixture
def client(aws: None) -> Any:
    return boto3.client("logs", region_name=REGION)


def _put(client: Any, stream: str, *events: tuple[int, str]) -> None:
    with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_group(logGroupName=GROUP)
    with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    client.put_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": NOW_MS + offset, "message": message} for offset, message in events],
    )


def _show(client: Any, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    count = day_two.logs(
        RunContext.create(ENV),
        function="api",
        client=client,
        targets=TARGETS,
        now_ms=lambda: NOW_MS + 60_000,
        out=out,
        err=err,
        **kwargs,
    )
    return count, out.getvalue(), err.getvalue()


def test_events_of_every_stream_in_time_order_with_request_id_and_level(client: Any) -> None:
    # Two execution environments (streams), written out of order relative to each other.
    _put(
        client,
        "2026/12/03/[7]bbb",
        (2_000, "START RequestId: 2222-bb Version: 7"),
        (2_500, "[ERROR]\tT\t2222-bb\tboom"),
    )
    _put(
        client,
        "2026/12/03/[7]aaa",
        (1_000, "START RequestId: 1111-aa Version: 7"),
        (1_200, "[INFO]\t2026-12-03T00:00:01.200Z\t1111-aa\thello\n"),
        (3_000, "REPORT RequestId: 1111-aa\tDuration: 3.1 ms"),
    )
    count, out, err = _show(client)
    lines = out.splitlines()
    assert count == 5 and len(lines) == 5
    assert [line.split(" ", 1)[1] for line in lines] == [
        "START RequestId: 1111-aa Version: 7",
        "[INFO]\t2026-12-03T00:00:01.200Z\t1111-aa\thello",
        "START RequestId: 2222-bb Version: 7",
        "[ERROR]\tT\t2222-bb\tboom",
        "REPORT RequestId: 1111-aa\tDuration: 3.1 ms",
    ]
    assert lines[0].startswith(logs.LogEvent(timestamp_ms=NOW_MS + 1_000, message="").time + " ")
    assert f"5 event(s) of {GROUP} since 10m ago" in err
    read = logs.read_events(client, GROUP, start_ms=0)
    assert read is not None
    assert [(e.level, e.request_id) for e in read] == [
        (None, "1111-aa"),
        ("INFO", "1111-aa"),
        (None, "2222-bb"),
        ("ERROR", "2222-bb"),
        (None, "1111-aa"),
    ]


def test_an_events_time_is_utc_to_the_millisecond() -> None:
    assert logs.LogEvent(timestamp_ms=1_800_000_001_007, message="x").line() == "2027-01-15T08:00:01.007Z x"


def test_json_log_format_keeps_level_and_request_id() -> None:
    event = logs.LogEvent(timestamp_ms=0, message='{"level": "WARN", "requestId": "abc-1", "message": "hm"}')
    assert (event.level, event.request_id) == ("WARN", "abc-1")


def test_since_and_filter_narrow_the_events(client: Any) -> None:
    _put(client, "s", (-3_600_000, "[ERROR]\tT\t0000-00\tan hour ago"), (1_000, "[ERROR]\tT\t1111-aa\tnow"))
    _put(client, "s", (1_500, "[INFO]\tT\t1111-aa\tfine"))
    count, out, _ = _show(client, since="10m")
    assert count == 2 and "an hour ago" not in out
    count, out, _ = _show(client, since="2h")
    assert count == 3
    count, out, err = _show(client, since="2h", pattern="ERROR")
    assert count == 2 and "fine" not in out and "matching 'ERROR'" in err


def test_a_function_that_never_logged_says_so(client: Any) -> None:
    count, out, err = _show(client)
    assert (count, out) == (0, "")
    assert f"{GROUP} does not exist yet: {NAME} has not logged anything" in err


class Refuses:
    """A Logs client that fails the test when called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"no AWS call expected, got {name}")


@pytest.mark.parametrize("since", ["10x", "m10", "", "0m", "-5m", "1.5h"])
def test_a_bad_since_is_refused_before_any_call(since: str) -> None:
    with pytest.raises(ConfigError) as err:
        _show(Refuses(), since=since)
    assert f"--since {since!r} is not a duration" in str(err.value)
    assert "10m" in str(err.value)


def test_since_units() -> None:
    assert logs.parse_since("30s").total_seconds() == 30
    assert logs.parse_since("10m").total_seconds() == 600
    assert logs.parse_since("2h").total_seconds() == 7200
    assert logs.parse_since("1d").total_seconds() == 86400
    assert logs.parse_since("1w").total_seconds() == 7 * 86400


def test_unknown_function_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown function 'apii'; did you mean 'api'\? \(functions: api\)"):
        day_two.logs(RunContext.create(ENV), function="apii", client=Refuses(), targets=TARGETS)


# ----------------------------------------------------------------------------- --follow


class Clock:
    """Sleeps are recorded, not slept; a callback may add log events between polls."""

    def __init__(self, between: dict[int, Any] | None = None, interrupt_after: int | None = None) -> None:
        self.sleeps: list[float] = []
        self.between = between or {}
        self.interrupt_after = interrupt_after

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            raise KeyboardInterrupt
        action = self.between.get(len(self.sleeps))
        if action is not None:
            action()


def test_follow_prints_each_new_event_once_and_backs_off_while_quiet(client: Any) -> None:
    _put(client, "s", (1_000, "[INFO]\tT\t1111-aa\tfirst"))
    clock = Clock(
        between={
            # Same millisecond as the last one seen (startTime is inclusive), then later ones.
            3: lambda: _put(client, "s", (1_000, "[INFO]\tT\t1111-aa\tsame ms"), (4_000, "[INFO]\tT\t2222-bb\tlater")),
        }
    )
    count, out, err = _show(client, follow=True, sleep=clock.sleep, max_polls=6)
    assert [line.split("\t")[-1] for line in out.splitlines()] == ["first", "same ms", "later"]
    assert count == 3
    # new events → 1 s; quiet → doubling; new events again → back to 1 s.
    assert clock.sleeps == [1.0, 2.0, 4.0, 1.0, 2.0]
    assert "Ctrl-C stops" in err


def test_follow_waits_at_most_the_cap() -> None:
    delays: list[float] = []
    loop = logs.follow(lambda start: [], start_ms=0, sleep=delays.append)
    for _ in range(10):
        next(loop)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_ctrl_c_ends_follow_normally(client: Any) -> None:
    _put(client, "s", (1_000, "[INFO]\tT\t1111-aa\tonly"))
    clock = Clock(interrupt_after=3)
    count, out, err = _show(client, follow=True, sleep=clock.sleep)
    assert count == 1 and out.count("only") == 1
    assert "stopped after 1 event(s)" in err


def test_follow_on_a_function_that_never_logged_waits_for_its_group(client: Any) -> None:
    clock = Clock(between={2: lambda: _put(client, "s", (5_000, "START RequestId: 3333-cc Version: 1"))})
    count, out, err = _show(client, follow=True, sleep=clock.sleep, max_polls=4)
    assert count == 1 and "3333-cc" in out
    assert err.count("does not exist yet") == 1


def test_every_page_is_read() -> None:
    from botocore.stub import Stubber

    client = boto3.client("logs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    first = {"logGroupName": GROUP, "startTime": 5}
    stub.add_response("filter_log_events", {"events": [{"timestamp": 9, "message": "b"}], "nextToken": "t1"}, first)
    stub.add_response("filter_log_events", {"events": [{"timestamp": 7, "message": "a"}]}, {**first, "nextToken": "t1"})
    with stub:
        events = logs.read_events(client, GROUP, start_ms=5)
    stub.assert_no_pending_responses()
    assert [e.message for e in events or []] == ["a", "b"]


def test_a_function_in_the_map_but_not_deployed_yet_is_named_so() -> None:
    """The repository's own map declares cleanup; the deployed targets here hold only the API."""
    with pytest.raises(ConfigError) as err:
        day_two.logs(RunContext.create(ENV), function="cleanup", client=Refuses(), targets=TARGETS)
    assert "function 'cleanup' is in Terraform's map but not deployed to test yet (deployed: api)" in str(err.value)
    with pytest.raises(ConfigError, match=r"^unknown function 'clenaup' \(functions: api\)$"):
        day_two.logs(RunContext.create(ENV), function="clenaup", client=Refuses(), targets=TARGETS)

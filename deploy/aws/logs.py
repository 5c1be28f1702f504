"""A function's CloudWatch log events: read in time order, or followed until Ctrl-C.

Lambda writes each function's logs to the group ``/aws/lambda/<function name>``, created on its
first invocation (so a function never invoked has none: that is a state, not an error). One
execution environment writes one stream; ``FilterLogEvents`` reads every stream of the group at
once, a page at a time, and its order across streams is not promised, so events are sorted here.

The Python runtime's lines keep what a reader needs to tell invocations apart: its text format is
``[LEVEL]\\t<time>\\t<request id>\\t<message>``, the platform's own lines are ``START RequestId: <id>
Version: …``, ``END RequestId: <id>`` and ``REPORT RequestId: <id>\\tDuration: …``, and the JSON log
format carries ``level`` and ``requestId`` keys. Messages are shown whole; the level and request
id are also parsed out for callers that need them.

The deployed verify's ImportModuleError check reads through :func:`read_events` as well.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from deploy.errors import ConfigError

#: What ``--since`` takes: a number and a unit.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SINCE = re.compile(r"^(\d+)([smhdw])$")
_TEXT_LINE = re.compile(r"^\[(?P<level>[A-Z]+)\]\t[^\t]*\t(?P<request>[^\t\s]+)\t")
_PLATFORM_LINE = re.compile(r"^(?:START|END|REPORT|INIT_REPORT) RequestId: (?P<request>[0-9a-fA-F-]+)")
#: Our own polling: a second at first and after every batch of events, doubling to half a minute
#: while the group is quiet (FilterLogEvents is throttled per account, shared with other readers).
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0


def log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def parse_since(text: str) -> datetime.timedelta:
    """``10m`` → 10 minutes; anything else is refused, naming the flag and the form it takes."""
    match = _SINCE.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise ConfigError(
            f"--since {text!r} is not a duration; give a number and a unit: s, m, h, d or w (e.g. 30s, 10m, 2h, 1d)"
        )
    return datetime.timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True, kw_only=True)
class LogEvent:
    timestamp_ms: int
    message: str
    stream: str = ""
    event_id: str = ""

    @property
    def level(self) -> str | None:
        found = _TEXT_LINE.match(self.message)
        if found:
            return found["level"]
        data = self._json()
        value = data.get("level") if data else None
        return str(value) if value is not None else None

    @property
    def request_id(self) -> str | None:
        for pattern in (_TEXT_LINE, _PLATFORM_LINE):
            found = pattern.match(self.message)
            if found:
                return found["request"]
        data = self._json()
        value = data.get("requestId") if data else None
        return str(value) if value is not None else None

    def _json(self) -> dict[str, Any] | None:
        if not self.message.startswith("{"):
            return None
        try:
            data = json.loads(self.message)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def time(self) -> str:
        moment = datetime.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.timestamp_ms % 1000:03d}Z"

    def line(self) -> str:
        """The event as one printed line: its time, then the message as Lambda wrote it."""
        return f"{self.time} {self.message.rstrip()}"


def read_events(
    logs: Any,
    group: str,
    *,
    start_ms: int,
    end_ms: int | None = None,
    pattern: str | None = None,
    limit: int | None = None,
) -> list[LogEvent] | None:
    """Every event of ``group`` from ``start_ms`` (inclusive) on, oldest first; None when the group
    does not exist. Other errors (access, throttling past botocore's retries) are raised."""
    from botocore.exceptions import ClientError

    from deploy.aws.retry import error_code

    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    if end_ms is not None:
        kwargs["endTime"] = end_ms
    if pattern:
        kwargs["filterPattern"] = pattern
    events: list[LogEvent] = []
    try:
        while True:
            if limit is not None:
                kwargs["limit"] = limit - len(events)
            page = logs.filter_log_events(**kwargs)
            events += [
                LogEvent(
                    timestamp_ms=int(e.get("timestamp", 0)),
                    message=str(e.get("message", "")),
                    stream=str(e.get("logStreamName", "")),
                    event_id=str(e.get("eventId", "")),
                )
                for e in page.get("events", [])
            ]
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken") or (limit is not None and len(events) >= limit):
                break
            kwargs["nextToken"] = token
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    # Stable: events of one stream keep the order Lambda wrote them in when their times are equal.
    return sorted(events, key=lambda e: e.timestamp_ms)


@dataclass(frozen=True, kw_only=True)
class Poll:
    """One round of ``follow``: what it found (None: no group yet) and how long it then waits."""

    events: tuple[LogEvent, ...] | None
    delay_s: float


def follow(
    read: Callable[[int], list[LogEvent] | None],
    *,
    start_ms: int,
    sleep: Callable[[float], None],
    first_delay_s: float = FIRST_DELAY_S,
    max_delay_s: float = MAX_DELAY_S,
) -> Iterator[Poll]:
    """Poll ``read(start_ms)`` for new events forever (the caller stops: Ctrl-C, or a test's count).

    ``startTime`` is inclusive and several events can share a millisecond, so each round asks again
    from the newest time seen and drops the events it already yielded (by event id, or by content
    when the service gives none). A round with new events resets the wait; a quiet one doubles it.
    """
    cursor = start_ms
    seen: set[tuple[int, str, str, str]] = set()
    delay: float | None = None
    while True:
        found = read(cursor)
        fresh: list[LogEvent] = []
        for event in found or ():
            key = (event.timestamp_ms, event.event_id, event.stream, "" if event.event_id else event.message)
            if key not in seen:
                seen.add(key)
                fresh.append(event)
        if fresh:
            cursor = max(cursor, fresh[-1].timestamp_ms)
            seen = {k for k in seen if k[0] >= cursor}  # older ones can no longer come back
        delay = first_delay_s if fresh or delay is None else min(delay * 2, max_delay_s)
        yield Poll(events=None if found is None else tuple(fresh), delay_s=delay)
        sleep(delay)


def import_errors(logs: Any, function_name: str, *, since_ms: int, limit: int = 5) -> list[LogEvent]:
    """Recent ``Runtime.ImportModuleError`` lines of a function (none when it never logged)."""
    return (
        read_events(logs, log_group(function_name), start_ms=since_ms, pattern='"ImportModuleError"', limit=limit) or []
    )

"""``inv logs``: one deployed function's CloudWatch log events, or followed until Ctrl-C.

The reading is ``deploy.aws.logs`` (the deployed verify's ImportModuleError check reads through
it too); this is the task's glue: which function, since when, what to print.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from deploy.aws import logs as reader
from deploy.config import EnvConfig, Targets

DEFAULT_SINCE = "10m"


def _print(events: Iterable[reader.LogEvent], out: TextIO) -> int:
    count = 0
    for event in events:
        out.write(event.line() + "\n")
        count += 1
    out.flush()
    return count


def show_logs(
    env: EnvConfig,
    *,
    function: str,
    since: str = DEFAULT_SINCE,
    follow: bool = False,
    pattern: str | None = None,
    client: Any = None,
    targets: Targets | None = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    sleep: Callable[[float], None] = time.sleep,
    max_polls: int | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the events of ``function`` (a key of Terraform's map, or its name) from ``since`` ago on;
    returns how many were printed. ``--follow`` polls until Ctrl-C, which ends it normally (exit 0).

    ``client``, ``targets``, ``now_ms``, ``sleep`` and ``max_polls`` are for tests: the follow loop runs without
    sleeping and stops after a number of polls."""
    from deploy.invoke import deployed_targets, function_target

    out, err = out or sys.stdout, err or sys.stderr
    window = reader.parse_since(since)  # a bad --since is refused before any AWS call
    targets = targets or deployed_targets(env)
    target = function_target(function, {fn.key: fn for fn in targets.functions})
    if client is None:
        from deploy.aws.calls import client as make_client

        client = make_client(env, "logs", targets.region)
    group = reader.log_group(target.name)
    start = now_ms() - int(window.total_seconds() * 1000)

    def read(start_ms: int) -> list[reader.LogEvent] | None:
        return reader.read_events(client, group, start_ms=start_ms, pattern=pattern)

    none_yet = (
        f"{group} does not exist yet: {target.name} has not logged anything (Lambda creates the group on "
        "its first invocation)"
    )
    what = f" matching {pattern!r}" if pattern else ""
    if not follow:
        events = read(start)
        if events is None:
            err.write(none_yet + "\n")
            return 0
        count = _print(events, out)
        err.write(f"› {count} event(s) of {group}{what} since {since} ago\n")
        return count

    err.write(f"› following {group}{what} from {since} ago; Ctrl-C stops\n")
    count, polls, said_none = 0, 0, False
    try:
        for poll in reader.follow(read, start_ms=start, sleep=sleep):
            polls += 1
            if poll.events is None and not said_none:
                err.write(none_yet + "; waiting for it\n")
                said_none = True
            count += _print(poll.events or (), out)
            if max_polls is not None and polls >= max_polls:
                break
    except KeyboardInterrupt:
        err.write(f"\n› stopped after {count} event(s)\n")
    return count

"""Day two's tasks: ``invoke`` (one handler, your event, the exact bytes) and ``logs`` (its CloudWatch
events, or followed until Ctrl-C). The running is ``deploy.invoke``'s, the reading ``deploy.aws.logs``'s;
here: which function, which event, and what is printed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from deploy import invoke as invoke_mod
from deploy.aws import logs as reader
from deploy.config import FunctionTarget, Targets
from deploy.context import RunContext
from deploy.invoke_result import InvokeResult, show
from deploy.run import layer_source

DEFAULT_SINCE = "10m"


def deployed_targets(ctx: RunContext) -> Targets:
    """What is deployed, read from the state object only (nothing is created or applied to find it)."""
    from deploy import emulator, terraform

    if ctx.emulator is not None:
        emulator.assert_reachable(ctx.emulator.url)
    return terraform.load_targets(ctx.settings, read_only=True)


def _declared(ctx: RunContext, key: str) -> FunctionTarget:
    """The function as Terraform's map declares it (its handler), named by its key: readable before any deploy."""
    from deploy.terraform.functions import declared_functions

    declared = {
        fn.key: FunctionTarget(key=fn.key, name=fn.key, handler=fn.handler, sources=fn.sources)
        for fn in declared_functions(ctx.settings)
    }
    return invoke_mod.function_target(key, declared)


def _deployed(ctx: RunContext, targets: Targets, key: str) -> FunctionTarget:
    """The deployed function of ``key``; one the map declares but no deploy has created yet is named so."""
    from deploy.errors import ConfigError

    try:
        return invoke_mod.function_target(key, {fn.key: fn for fn in targets.functions})
    except ConfigError as unknown:
        try:
            declared = _declared(ctx, key)
        except ConfigError:
            raise unknown from None  # not in the map either: the did-you-mean of the deployed keys
        raise ConfigError(
            f"function {declared.key!r} is in Terraform's map but not deployed to {ctx.name} yet "
            f"(deployed: {', '.join(fn.key for fn in targets.functions) or 'none'})",
            hint=f"`inv deploy --env {ctx.name}` creates it; `inv invoke` without --deployed runs it locally",
        ) from None


def _as_deployed(ctx: RunContext, declared: FunctionTarget) -> tuple[FunctionTarget, dict[str, str], bool]:
    """The declared function under its deployed name, with its configured variables, when it is deployed
    (the sandbox runs it as configured); else under its key with none. Reads only."""
    from botocore.exceptions import BotoCoreError, ClientError

    from deploy.errors import DeployError

    try:
        targets = deployed_targets(ctx)
        deployed = {fn.key: fn for fn in targets.functions}.get(declared.key)
        if deployed is None:
            return declared, {}, False
        config = ctx.aws.client("lambda", targets.region).get_function_configuration(FunctionName=deployed.name)
    except (DeployError, BotoCoreError, ClientError):
        return declared, {}, False
    variables = dict((config.get("Environment") or {}).get("Variables") or {})
    return replace(deployed, handler=declared.handler), variables, True


def invoke(
    ctx: RunContext, *, function: str, event: str | None = None, deployed: bool = False, stdin: TextIO | None = None
) -> InvokeResult:
    """``inv invoke``: a file or stdin event is parsed before anything else (a bad one reads, builds and runs
    nothing), then the function is found, then the smoke event named; run, print, and raise ``HandlerError``
    when the handler raised."""
    env = ctx.settings
    literal = event is None or event == "-" or Path(event).exists()
    loaded = invoke_mod.load_event(event, key=function, smoke={}, stdin=stdin) if literal else None
    if deployed:
        targets = deployed_targets(ctx)
        target = _deployed(ctx, targets, function)
        loaded = loaded or invoke_mod.load_event(event, key=target.key, smoke=env.verify.smoke, stdin=stdin)
        result = invoke_mod.invoke_deployed(env, targets, target, loaded, emulator=ctx.is_emulator)
    else:
        declared = _declared(ctx, function)
        loaded = loaded or invoke_mod.load_event(event, key=declared.key, smoke=env.verify.smoke, stdin=stdin)
        target, variables, is_deployed = _as_deployed(ctx, declared)
        # Built when missing, as a deploy would build them (a layer another machine published is fetched).
        function_zip = layer_source.build_function(ctx).artifact
        layer = layer_source.obtain_layer(ctx, function_unzipped=function_zip.unzipped_size).artifact
        result = invoke_mod.invoke_local(
            env, target, loaded, layer=layer, function=function_zip, environment=variables, deployed=is_deployed
        )
    result = replace(result, detail=f"{result.detail}; event: {loaded.source}")
    show(result)
    result.raise_for_failure()
    return result


# ---------------------------------------------------------------------------- logs


def _print(events: Iterable[reader.LogEvent], out: TextIO) -> int:
    count = 0
    for event in events:
        out.write(event.line() + "\n")
        count += 1
    out.flush()
    return count


def logs(
    ctx: RunContext,
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
    """``inv logs``: the events of ``function`` (a key of Terraform's map, or its name) from ``since`` ago on;
    returns how many were printed. ``--follow`` polls until Ctrl-C, which ends it normally (exit 0).

    ``client``, ``targets``, ``now_ms``, ``sleep`` and ``max_polls`` are for tests: the follow loop runs
    without sleeping and stops after a number of polls."""
    out, err = out or sys.stdout, err or sys.stderr
    window = reader.parse_since(since)  # a bad --since is refused before any AWS call
    targets = targets or deployed_targets(ctx)
    target = _deployed(ctx, targets, function)
    client = client or ctx.aws.client("logs", targets.region)
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
            fresh = poll.events or ()
            # Counted before printed: a Ctrl-C that lands just after the last line is written must
            # not lose that line from the count (``count += _print(...)`` had not assigned yet).
            count += len(fresh)
            _print(fresh, out)
            if max_polls is not None and polls >= max_polls:
                break
    except KeyboardInterrupt:
        err.write(f"\n› stopped after {count} event(s)\n")
    return count

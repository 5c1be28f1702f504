"""``inv invoke``: one function, one event of your own, on the exact bytes that ship.

Without ``--deployed`` the handler runs on the zips the build made (function + layer, built first
when missing) in verify's sandbox: the runtime's own interpreter, Lambda's ``sys.path``, only the
layer's packages. That is where a local invoke that ignores layers would pass and Lambda would fail
with ImportModuleError (SAM CLI's most reported local-invoke problem); here it fails too.

With ``--deployed`` on AWS, the ``live`` alias is invoked through the Lambda API (``LogType=Tail``:
the last 4 KB of its log come back with the answer). On the emulator, whose Lambda without Docker
only echoes the event back (which looks like success and proves nothing), the bytes the ``live``
alias points to are fetched, checked against the CodeSha256 Lambda reports, and run in the sandbox,
and the output says so.

The answer is the handler's return value as JSON on stdout (Lambda's error document on a handler
error), its logs on stderr, with init and duration; a handler error is a ``HandlerError``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from deploy.artifact import Artifact
from deploy.config import EnvConfig, FunctionTarget, SmokeCase, Targets, unknown_function
from deploy.errors import ConfigError
from deploy.invoke_result import Failure, InvokeResult, Where, as_on_lambda, from_lambda, from_runner

#: The event when none is given, as ``sam local invoke`` without ``-e`` sends.
EMPTY_EVENT: Mapping[str, Any] = {}


# ---------------------------------------------------------------------------- the event


@dataclass(frozen=True, kw_only=True)
class Event:
    """The event to send and where it came from (``smoke event health``, ``file e.json``, ``stdin``)."""

    payload: Any
    source: str


def _not_json(what: str, text: str) -> Any:
    """The text as JSON, or a ConfigError naming ``what`` and the line and column at fault."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON (a Lambda payload cannot carry it)")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} is not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}; nothing was run",
            hint="a Lambda event is one JSON document (an object, usually)",
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{what} is not JSON: {exc}; nothing was run") from None


def load_event(
    arg: str | None, *, key: str, smoke: Mapping[str, tuple[SmokeCase, ...]], stdin: TextIO | None = None
) -> Event:
    """``--event``: a smoke event of this function by name, a JSON file, or ``-`` for stdin; none: ``{}``.

    A name that is both is taken as the file when the file exists (a path is what the user typed).
    Everything is parsed here, before any build or AWS call, so a bad event changes nothing."""
    if arg is None:
        return Event(payload=dict(EMPTY_EVENT), source="empty event {} (no --event)")
    if arg == "-":
        return Event(payload=_not_json("the event on stdin", (stdin or sys.stdin).read()), source="stdin")
    path = Path(arg)
    cases = {c.name: c for c in smoke.get(key, ())}
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"event file {arg}: cannot read it ({exc})") from None
        return Event(payload=_not_json(f"event file {arg}", text), source=f"file {arg}")
    if arg in cases:
        return Event(payload=cases[arg].event, source=f"smoke event {arg!r} from invoke.yaml")
    if path.exists():
        raise ConfigError(f"event file {arg} is not a regular file")
    import difflib

    close = difflib.get_close_matches(arg, list(cases), n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(cases) or "none"
    raise ConfigError(
        f"--event {arg!r}: no such file, and no smoke event of that name for {key}{guess} (its smoke events: {known})",
        hint="give a JSON file, - to read the event from stdin, or a smoke event's name from invoke.yaml",
    )


# ---------------------------------------------------------------------------- the function


def function_target(key: str, known: Mapping[str, FunctionTarget]) -> FunctionTarget:
    """The function of ``key`` (its key in Terraform's var.functions), or a ConfigError with a did-you-mean."""
    if key in known:
        return known[key]
    by_name = {fn.name: fn for fn in known.values()}
    if key in by_name:
        return by_name[key]
    raise ConfigError(unknown_function(key, sorted(known)))


# ---------------------------------------------------------------------------- running it


def invoke_local(
    env: EnvConfig,
    target: FunctionTarget,
    event: Event,
    *,
    layer: Artifact,
    function: Artifact,
    environment: Mapping[str, str],
    deployed: bool,
) -> InvokeResult:
    """The handler on the built zips in the sandbox, with the variables the function has on Lambda
    (``deployed``) or none (not deployed yet: said so)."""
    from deploy.verify.extracted import ExtractionCache
    from deploy.verify.sandbox import built_tree

    for artifact in (layer, function):
        artifact.check()
    cache = ExtractionCache(root=env.paths.build / "extracted")  # verify's: the layer is extracted once
    with contextlib.ExitStack() as held:
        tree = built_tree(held, cache, layer=layer, function=function)
        detail = (
            f"the built zips (function {function.sha256[:12]}, layer {layer.identity[:12]}) in the sandbox, "
            f"python{env.python_version}"
        )
        if not deployed:
            detail += "; not deployed yet, so without the variables Terraform would give it"
        return run_in_sandbox(
            env,
            target,
            tree,
            event,
            environment=environment,
            where="sandbox: built zips",
            detail=detail,
        )


def run_in_sandbox(
    env: EnvConfig,
    target: FunctionTarget,
    tree: Any,
    event: Event,
    *,
    environment: Mapping[str, str],
    where: Where,
    detail: str,
    memory_mb: int = 128,
    timeout_s: float | None = None,
    function_arn: str | None = None,
) -> InvokeResult:
    """One event through verify's sandbox (``open_session``, its environment and its runner)."""
    from deploy.verify.sandbox import DEFAULT_TIMEOUT_S, RUNNER, _Job, find_runtime_python, open_session

    python = find_runtime_python(env.python_version)
    timeout = timeout_s or DEFAULT_TIMEOUT_S
    job = _Job(target=target, tree=tree, cases=(), environment=dict(environment), memory_mb=memory_mb)
    with tempfile.TemporaryDirectory(prefix="invoke-") as tmp:
        root = Path(tmp)
        with open_session(env, [tree], python=python, root=root) as session:
            scratch = root / "run"
            variables = session.environment(job, scratch)
            spec = {
                "task_root": str(tree.task_root),
                "sys_path": session.sys_path(tree),
                "handler": target.handler,
                "events": [{"name": "invoke", "event": event.payload}],
                "lambda_logging": True,  # the handler's logger.info lines, as CloudWatch shows them
                "timeout_s": timeout,
                "context": {
                    "function_name": target.name,
                    "memory_limit_in_mb": memory_mb,
                    "invoked_function_arn": function_arn
                    or f"arn:aws:lambda:{env.region}:000000000000:function:{target.name}",
                },
            }
            spec_path = scratch / "spec.json"
            spec_path.write_text(json.dumps(spec))
            try:
                proc = session.run(
                    job, ["-B", str(RUNNER), str(spec_path)], variables, scratch=scratch, timeout_s=timeout
                )
            except subprocess.TimeoutExpired:
                failure = Failure(error_type="Sandbox.Timedout", message=f"Task timed out after {timeout:g} seconds")
                return InvokeResult(function=target.name, where=where, detail=detail, failure=failure)
            isolation = session.isolation.mode
    lambda_paths = partial(as_on_lambda, task_root=str(tree.task_root), opt=str(tree.opt), runner=str(RUNNER))
    logs = lambda_paths(proc.stderr.decode("utf-8", "replace"))
    try:
        raw = json.loads(proc.stdout)
    except ValueError:
        failure = Failure(
            error_type="Sandbox.Crash",
            message=f"the sandbox process exited with {proc.returncode} without a report",
            traceback_tail=logs[-2000:],
        )
        return InvokeResult(function=target.name, where=where, detail=detail, failure=failure)
    for entry in (raw, *(raw.get("results") or ())):
        if entry.get("traceback_tail"):
            entry["traceback_tail"] = lambda_paths(entry["traceback_tail"])
    return from_runner(raw, function=target.name, where=where, detail=f"{detail} (isolation: {isolation})", logs=logs)


def invoke_deployed(
    env: EnvConfig, targets: Targets, target: FunctionTarget, event: Event, *, emulator: bool, lam: Any = None
) -> InvokeResult:
    """The ``live`` alias: invoked on AWS; on the emulator, its bytes fetched, checked and run in the sandbox."""
    from deploy.aws.calls import client
    from deploy.verify.remote import MAX_FUNCTION_TIMEOUT_S, invoke_config

    if emulator:
        return run_alias_bytes(env, targets, target, event)
    reader = lam or client(env, "lambda", targets.region)
    config = reader.get_function_configuration(FunctionName=target.name, Qualifier=targets.alias)
    # One attempt, read timeout past the function's own: an invoke is not idempotent (remote.invoke_config).
    timeout = float(config.get("Timeout") or MAX_FUNCTION_TIMEOUT_S)
    invoker = lam or client(env, "lambda", targets.region, config=invoke_config(timeout))
    resp = invoker.invoke(
        FunctionName=target.name,
        Qualifier=targets.alias,
        InvocationType="RequestResponse",
        LogType="Tail",
        Payload=json.dumps(event.payload).encode(),
    )
    version = resp.get("ExecutedVersion") or config.get("Version")
    return from_lambda(resp, function=target.name, detail=f"Lambda invoked {targets.alias} (version {version})")


def run_alias_bytes(
    env: EnvConfig,
    targets: Targets,
    target: FunctionTarget,
    event: Event,
    *,
    fetch: Callable[[str], bytes] | None = None,
) -> InvokeResult:
    """The emulator's Lambda would echo the event back: run the alias's own bytes instead, checked."""
    from deploy.aws.calls import client
    from deploy.aws.deployed import http_get
    from deploy.verify.deployed import _Fetcher
    from deploy.verify.extracted import ExtractionCache

    lam = client(env, "lambda", targets.region)
    cache = ExtractionCache(root=env.paths.build / "extracted")
    with tempfile.TemporaryDirectory(prefix="invoke-") as tmp, contextlib.ExitStack() as held:
        (Path(tmp) / "zips").mkdir()
        fetcher = _Fetcher(
            env=env,
            bucket=targets.bucket,
            s3=client(env, "s3", targets.region),
            lam=lam,
            fetch=fetch or http_get,
            dest=Path(tmp) / "zips",
        )
        config, layer_shas = fetcher.alias_layers(target.name, alias=targets.alias, layer_name=targets.layer_name)
        code_sha = config["CodeSha256"]
        tree = fetcher.tree(
            held, cache, name=target.name, alias=targets.alias, code_sha=code_sha, layer_shas=layer_shas
        )
        detail = (
            f"emulator: its Lambda only echoes the event back, so the bytes {targets.alias} points to "
            f"(version {config.get('Version')}, CodeSha256 {code_sha}, checked; {len(layer_shas)} layer(s)) "
            f"ran in the sandbox, python{env.python_version}"
        )
        return run_in_sandbox(
            env,
            replace(target, handler=config.get("Handler") or target.handler),
            tree,
            event,
            environment=dict((config.get("Environment") or {}).get("Variables") or {}),
            where="sandbox: deployed bytes",
            detail=detail,
            memory_mb=int(config.get("MemorySize") or 128),
            function_arn=config.get("FunctionArn"),
        )

"""Move ``live`` aliases back: each function to its own previous version, or one function to a given one.

Where the previous version is recorded: each deploy that moves a ``live`` alias writes the version it
replaced, and the commit of the code it moves to, into the alias's Description
(``previous=4 commit=1a2b3c4d5e6f``; Terraform ignores the description, see modules/lambda). A
rollback writes ``rolled back from 5 (deploy at commit 1a2b3c4d5e6f)`` there, which ``status`` and
the next deploy read to say the environment is rolled back. Versions differ between functions, so
``--to`` needs ``--function``.

Only the alias moves; published versions are immutable, so the version we move to is
exactly what was served before. Every target version is checked to exist before the
first alias moves, so a typo changes nothing. Each move is recorded in the caller's
transaction first, so a failure or interrupt half-way puts the moved aliases back. Each function
ends with an :class:`deploy.steps.Outcome` (rolled_back, unchanged, or on a dry run would roll back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws import calls
from deploy.aws.attach import Recorder
from deploy.aws.retry import RetryPolicy, call, error_code, error_message
from deploy.config import EnvConfig, FunctionTarget, Targets
from deploy.errors import AwsError, ConfigError
from deploy.progress import Event, Progress, State, ignore
from deploy.steps import Outcome, Status, Step

_PREVIOUS = re.compile(r"previous=(\d+)(?: commit=(\w+))?")
_ROLLED_BACK = re.compile(r"rolled back from (\w+)(?: \(deploy at commit (\w+)\))?")


def _alias_version(lam: Any, name: str, alias: str) -> str:
    try:
        return str(lam.get_alias(FunctionName=name, Name=alias)["FunctionVersion"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise AwsError(f"{name}: function or alias {alias!r} not found", hint="run `inv infra.apply`") from None
        raise AwsError(f"{name}: {error_message(exc)}") from None


def published_versions(lam: Any, name: str) -> list[int]:
    pages = lam.get_paginator("list_versions_by_function").paginate(FunctionName=name)
    return sorted(int(v["Version"]) for page in pages for v in page.get("Versions", []) if v["Version"].isdigit())


@dataclass(frozen=True, kw_only=True)
class RolledBack:
    """A function whose ``live`` alias a rollback moved, and has stayed there since."""

    name: str
    from_version: str
    commit: str | None  # of the deploy rolled back from (None: recorded before commits were)


def _rolled_back_marker(current: str, commit: str | None) -> str:
    return f"rolled back from {current}" + (f" (deploy at commit {commit})" if commit else "")


def rolled_back(env: EnvConfig, targets: Targets) -> tuple[RolledBack, ...]:
    """Reads only: the functions whose alias still serves what a rollback moved it to."""
    lam = calls.client(env, "lambda", targets.region)
    out = []
    for fn in targets.functions:
        try:
            description = str(lam.get_alias(FunctionName=fn.name, Name=targets.alias).get("Description") or "")
        except ClientError:
            continue  # a missing function or alias is the plan's to report
        match = _ROLLED_BACK.fullmatch(description.strip())
        if match:
            out.append(RolledBack(name=fn.name, from_version=match[1], commit=match[2]))
    return tuple(out)


def describe_rolled_back(found: tuple[RolledBack, ...]) -> str | None:
    """``rolled back from the deploy at commit 1a2b3c4d5e6f (acme-local-api 5 → …)``, or None."""
    if not found:
        return None
    commits = sorted({r.commit for r in found if r.commit})
    which = f"the deploy at commit {', '.join(commits)}" if commits else "an earlier deploy"
    return f"rolled back from {which} ({', '.join(f'{r.name} was at {r.from_version}' for r in found)})"


def _apply(
    lam: Any,
    targets: Targets,
    moves: list[tuple[str, str, str, str | None]],
    *,
    dry_run: bool,
    record: Recorder | None,
    emit: Progress,
) -> tuple[Outcome, ...]:
    policy = RetryPolicy()
    out = []
    for name, current, to, commit in moves:
        changed = current != to
        if changed and not dry_run:
            alias_event = partial(Event, function=name, step=Step.ALIAS)
            emit(alias_event(state=State.STARTED, detail=f"moving {targets.alias} back {current} → {to}"))
            if record is not None:
                record.check()
                record.alias(name, to)
            try:
                call(
                    lam.update_alias,
                    what=name,
                    policy=policy,
                    error=AwsError,
                    FunctionName=name,
                    Name=targets.alias,
                    FunctionVersion=to,
                    Description=_rolled_back_marker(current, commit),
                    # A rollout killed mid-bake (kill -9) leaves weights on the alias: a rollback
                    # means all traffic on the version it names.
                    RoutingConfig={"AdditionalVersionWeights": {}},
                )
            except ClientError as exc:
                raise AwsError(f"{name}: moving alias {targets.alias} to {to}: {error_message(exc)}") from None
            emit(alias_event(state=State.DONE, detail=f"{targets.alias} moved back {current} → {to}"))
        status = (Status.WOULD_ROLL_BACK if dry_run else Status.ROLLED_BACK) if changed else Status.UNCHANGED
        out.append(Outcome(name=name, status=status, old_version=current, new_version=to))
    return tuple(out)


def _recorded(lam: Any, name: str, alias: str) -> tuple[int | None, str | None]:
    """(the version the last deploy replaced, the commit it deployed), from the alias's description."""
    description = str(lam.get_alias(FunctionName=name, Name=alias).get("Description") or "")
    match = _PREVIOUS.fullmatch(description.strip())
    return (int(match[1]), match[2]) if match else (None, None)


def chosen(targets: Targets, function: str | None, to: str | None) -> tuple[FunctionTarget, ...]:
    """The functions a rollback moves; a ConfigError (exit 2) for an unknown one or a --to without one."""
    if function is not None:
        return (targets.function(function),)
    if to is not None and len(targets.functions) > 1:
        raise ConfigError(
            f"--to {to} needs --function: version numbers differ between functions "
            f"({', '.join(fn.key for fn in targets.functions)})",
            hint="without --to, each function goes back to its own previous version",
        )
    return targets.functions


def rollback(
    env: EnvConfig,
    targets: Targets,
    *,
    function: str | None = None,
    to: str | None = None,
    dry_run: bool = False,
    record: Recorder | None = None,
    progress: Progress = ignore,
) -> tuple[Outcome, ...]:
    """Each function's alias (or only ``function``'s, by key or name) → the version it served before
    the last deploy (else the highest published one below the current), or ``to``; all or nothing."""
    lam = calls.client(env, "lambda", targets.region)
    moves: list[tuple[str, str, str, str | None]] = []
    for fn in chosen(targets, function, to):
        current = _alias_version(lam, fn.name, targets.alias)
        versions = published_versions(lam, fn.name)
        recorded, commit = _recorded(lam, fn.name, targets.alias)
        if to is not None:
            if not to.isdigit() or int(to) not in versions:
                raise AwsError(
                    f"{fn.name}: version {to} does not exist (published: {', '.join(map(str, versions)) or 'none'}); "
                    "nothing was changed"
                )
            moves.append((fn.name, current, str(int(to)), commit))
            continue
        if recorded is not None and recorded in versions and str(recorded) != current:
            # What the alias served before the last deploy moved it; a version a failed deploy
            # published but never served is skipped.
            moves.append((fn.name, current, str(recorded), commit))
            continue
        older = [v for v in versions if current.isdigit() and v < int(current)]
        if not older:
            raise AwsError(
                f"{fn.name}: alias {targets.alias} is at version {current}, which has no previous version; "
                "nothing was changed"
            )
        moves.append((fn.name, current, str(older[-1]), commit))
    return _apply(lam, targets, moves, dry_run=dry_run, record=record, emit=progress)

"""Move ``live`` aliases back: to the previous published version or a given one.

Only the alias moves; published versions are immutable, so the version we move to is
exactly what was served before. Every target version is checked to exist before the
first alias moves, so a typo changes nothing. Each move is recorded in the caller's
transaction first, so a failure or interrupt half-way puts the moved aliases back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws import calls
from deploy.aws.attach import Recorder
from deploy.aws.retry import RetryPolicy, call, error_code, error_message
from deploy.config import EnvConfig, Targets
from deploy.errors import AwsError


@dataclass(frozen=True, kw_only=True)
class RollbackOutcome:
    name: str
    from_version: str
    to_version: str
    changed: bool  # False when the alias already pointed there (or on a dry run: would change)
    dry_run: bool = False


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


def _apply(
    lam: Any, targets: Targets, moves: list[tuple[str, str, str]], *, dry_run: bool, record: Recorder | None
) -> tuple[RollbackOutcome, ...]:
    policy = RetryPolicy()
    out = []
    for name, current, to in moves:
        changed = current != to
        if changed and not dry_run:
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
                    Description=f"rolled back from {current}",
                )
            except ClientError as exc:
                raise AwsError(f"{name}: moving alias {targets.alias} to {to}: {error_message(exc)}") from None
        out.append(RollbackOutcome(name=name, from_version=current, to_version=to, changed=changed, dry_run=dry_run))
    return tuple(out)


def _recorded_previous(lam: Any, name: str, alias: str) -> int | None:
    description = str(lam.get_alias(FunctionName=name, Name=alias).get("Description") or "")
    match = re.fullmatch(r"previous=(\d+)", description.strip())
    return int(match[1]) if match else None


def rollback(
    env: EnvConfig, targets: Targets, *, to: str | None = None, dry_run: bool = False, record: Recorder | None = None
) -> tuple[RollbackOutcome, ...]:
    """Each function's alias → the highest published version below the current one, or ``to``."""
    lam = calls.client(env, "lambda", targets.region)
    moves: list[tuple[str, str, str]] = []
    for fn in targets.functions:
        current = _alias_version(lam, fn.name, targets.alias)
        versions = published_versions(lam, fn.name)
        if to is not None:
            if not to.isdigit() or int(to) not in versions:
                raise AwsError(
                    f"{fn.name}: version {to} does not exist (published: {', '.join(map(str, versions)) or 'none'}); "
                    "nothing was changed"
                )
            moves.append((fn.name, current, str(int(to))))
            continue
        recorded = _recorded_previous(lam, fn.name, targets.alias)
        if recorded is not None and recorded in versions and str(recorded) != current:
            # What the alias served before the last deploy moved it; a version a failed deploy
            # published but never served is skipped.
            moves.append((fn.name, current, str(recorded)))
            continue
        older = [v for v in versions if current.isdigit() and v < int(current)]
        if not older:
            raise AwsError(
                f"{fn.name}: alias {targets.alias} is at version {current}, which has no previous version; "
                "nothing was changed"
            )
        moves.append((fn.name, current, str(older[-1])))
    return _apply(lam, targets, moves, dry_run=dry_run, record=record)

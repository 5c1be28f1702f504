"""Cross-account layer sharing through layer version permissions.

Statement ids are derived from the principal, so a rerun finds its own statements in
``get_layer_version_policy`` and adds nothing. A public share (principal ``*`` with no
organization) exposes the layer's code to every AWS account, so it needs ``allow_public``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws import calls
from deploy.aws.retry import error_code, error_message
from deploy.aws.session import Endpoint
from deploy.config import ShareSettings
from deploy.errors import AwsError, ConfigError
from deploy.lambda_facts import parse_layer_version_arn

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")


@dataclass(frozen=True, kw_only=True)
class Grant:
    statement_id: str
    principal: str
    organization_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ShareResult:
    layer_version_arn: str
    added: tuple[str, ...]  # statement ids added (or, on a dry run, to add)
    existing: tuple[str, ...]
    dry_run: bool = False


def grants(settings: ShareSettings) -> tuple[Grant, ...]:
    """The statements ``settings`` asks for; refuses a public share that was not explicitly allowed."""
    out: list[Grant] = []
    public = False
    for account in settings.accounts:
        if account == "*":
            public = True
        elif _ACCOUNT.match(account):
            out.append(Grant(statement_id=f"share-account-{account}", principal=account))
        else:
            raise ConfigError(f"share.accounts: {account!r} is not a 12-digit AWS account ID or '*'")
    if settings.organization_id is not None:
        if not _ORG.match(settings.organization_id):
            raise ConfigError(f"share.organization_id: {settings.organization_id!r} is not an organization ID (o-...)")
        out.append(
            Grant(
                statement_id=f"share-org-{settings.organization_id}",
                principal="*",
                organization_id=settings.organization_id,
            )
        )
    if public:
        if not settings.allow_public:
            raise ConfigError(
                "share.accounts contains '*' without an organization: that makes the layer public",
                hint="set share.allow_public: true if every AWS account may read this layer",
            )
        out.append(Grant(statement_id="share-public", principal="*"))
    return tuple(out)


def _existing_statements(lam: Any, name: str, version: int) -> set[str]:
    try:
        policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=version)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return set()
        raise AwsError(f"layer {name}:{version}: {error_message(exc)}") from None
    document = json.loads(policy.get("Policy") or "{}")
    return {str(s.get("Sid")) for s in document.get("Statement", [])}


def share_layer(
    aws: Endpoint, layer_version_arn: str, settings: ShareSettings, *, dry_run: bool = False
) -> ShareResult:
    wanted = grants(settings)
    parsed = parse_layer_version_arn(layer_version_arn)
    if parsed is None:
        raise AwsError(f"{layer_version_arn!r} is not a layer version ARN")
    name, version = parsed.name, parsed.version
    lam = calls.client(aws, "lambda", parsed.region)
    have = _existing_statements(lam, name, version) if wanted else set()
    todo = [g for g in wanted if g.statement_id not in have]
    if not dry_run:
        for grant in todo:
            args: dict[str, Any] = {
                "LayerName": name,
                "VersionNumber": version,
                "StatementId": grant.statement_id,
                "Action": "lambda:GetLayerVersion",
                "Principal": grant.principal,
            }
            if grant.organization_id:
                args["OrganizationId"] = grant.organization_id
            try:
                lam.add_layer_version_permission(**args)
            except ClientError as exc:
                if error_code(exc) == "ResourceConflictException":  # added by a concurrent run: same statement
                    continue
                raise AwsError(f"sharing {layer_version_arn} with {grant.principal}: {error_message(exc)}") from None
    return ShareResult(
        layer_version_arn=layer_version_arn,
        added=tuple(g.statement_id for g in todo),
        existing=tuple(g.statement_id for g in wanted if g.statement_id in have),
        dry_run=dry_run,
    )

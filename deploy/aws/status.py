"""status: what each function's ``live`` alias serves, compared with the local artifacts.

"Deployed" means what the alias serves, not ``$LATEST``: that is what callers get. The
layer's identity is read back from the layer version description publish-layer wrote,
so a rebuilt-but-identical layer (same identity) is in sync.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from deploy.artifact import Artifact
from deploy.aws import calls
from deploy.aws.attach import frozen_config
from deploy.aws.publish import identity_from_description
from deploy.aws.retry import error_code, error_message
from deploy.config import EnvConfig, Targets
from deploy.errors import AwsError, DriftError


@dataclass(frozen=True, kw_only=True)
class FunctionStatus:
    name: str
    key: str
    exists: bool
    alias_version: str | None = None
    code_sha256: str | None = None
    local_code_sha256: str | None = None
    layer_version: int | None = None
    layer_identity: str | None = None
    local_layer_identity: str | None = None
    last_update_status: str | None = None


@dataclass(frozen=True, kw_only=True)
class StatusReport:
    rows: tuple[FunctionStatus, ...]
    differences: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "in_sync": self.in_sync,
            "differences": list(self.differences),
            "functions": [asdict(r) for r in self.rows],
        }

    def raise_for_drift(self) -> None:
        if self.differences:
            raise DriftError("deployed state differs from the local artifacts:\n  " + "\n  ".join(self.differences))


def _get(lam: Any, name: str, **kwargs: Any) -> Any:
    try:
        return lam.get_function_configuration(FunctionName=name, **kwargs)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise AwsError(f"{name}: {error_message(exc)}") from None


def status(
    env: EnvConfig, targets: Targets, *, layer: Artifact | None = None, function: Artifact | None = None
) -> StatusReport:
    lam = calls.client(env, "lambda", targets.region)
    identities: dict[int, str | None] = {}
    rows: list[FunctionStatus] = []
    diffs: list[str] = []
    for fn in targets.functions:
        latest = _get(lam, fn.name)
        if latest is None:
            rows.append(FunctionStatus(name=fn.name, key=fn.key, exists=False))
            diffs.append(f"{fn.name}: function does not exist")
            continue
        try:
            alias_version: str | None = str(lam.get_alias(FunctionName=fn.name, Name=targets.alias)["FunctionVersion"])
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise AwsError(f"{fn.name}: {error_message(exc)}") from None
            alias_version = None
            diffs.append(f"{fn.name}: alias {targets.alias} does not exist")
        served = _get(lam, fn.name, Qualifier=alias_version) if alias_version else latest
        ours = [
            str(layer_ref["Arn"])
            for layer_ref in served.get("Layers") or ()
            if str(layer_ref["Arn"]).rsplit(":", 2)[-2] == targets.layer_name
        ]
        layer_version = int(ours[0].rsplit(":", 1)[1]) if ours else None
        if layer_version is not None and layer_version not in identities:
            try:
                got = lam.get_layer_version(LayerName=targets.layer_name, VersionNumber=layer_version)
                identities[layer_version] = identity_from_description(got.get("Description"))
            except ClientError:  # a deleted version still serves functions but cannot be described
                identities[layer_version] = None
        row = FunctionStatus(
            name=fn.name,
            key=fn.key,
            exists=True,
            alias_version=alias_version,
            code_sha256=served.get("CodeSha256"),
            local_code_sha256=function.code_sha256 if function else None,
            layer_version=layer_version,
            layer_identity=identities.get(layer_version) if layer_version is not None else None,
            local_layer_identity=layer.identity if layer else None,
            last_update_status=latest.get("LastUpdateStatus"),
        )
        rows.append(row)
        if function is not None and row.code_sha256 != row.local_code_sha256:
            diffs.append(f"{fn.name}: deployed code {row.code_sha256} != local {row.local_code_sha256}")
        if layer is not None:
            if layer_version is None:
                diffs.append(f"{fn.name}: layer {targets.layer_name} is not attached")
            elif row.layer_identity != layer.identity:
                diffs.append(
                    f"{fn.name}: layer version {layer_version} has identity {row.layer_identity} "
                    f"!= local {layer.identity}"
                )
        # What deploy plans from: $LATEST (left ahead of `live` by a rolled-back deploy) and the
        # configuration Terraform changed on $LATEST that no version has frozen yet.
        latest_ahead = latest.get("CodeSha256") != served.get("CodeSha256")
        if function is not None and alias_version and latest_ahead and latest.get("CodeSha256") != function.code_sha256:
            diffs.append(f"{fn.name}: $LATEST code {latest.get('CodeSha256')} != local {function.code_sha256}")
        if alias_version and frozen_config(served) != frozen_config(latest):
            diffs.append(f"{fn.name}: $LATEST configuration differs from what {targets.alias} serves")
        if row.last_update_status not in (None, "Successful"):
            diffs.append(f"{fn.name}: last update {row.last_update_status}")
    return StatusReport(rows=tuple(rows), differences=diffs)

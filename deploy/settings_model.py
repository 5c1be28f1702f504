"""The pydantic model of invoke.yaml's ``deploy`` tree, and the one-line messages for its errors.

Imported only to validate a tree ``deploy.settings`` has not seen validate before (see its
cache): pydantic and these models cost 80 ms, a fifth of a no-op ``inv build-layer``.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploy.errors import ConfigError
from deploy.settings import key_path


class _Strict(BaseModel):
    """No unknown keys, no coercion: ``"8"`` is not an integer, ``123`` is not a string."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LayerModel(_Strict):
    exclude_runtime_boto: bool | None = None
    strip_tests: bool | None = None


class VerifyModel(_Strict):
    remote: bool | None = None
    trusted_layers: list[str] | None = None
    isolation: Literal["bwrap", "none"] | None = None
    #: Function key (or ``*`` for all) -> variables the sandbox forces; ``{tmp}`` is its scratch folder.
    sandbox_env: dict[str, dict[str, str]] | None = None


class ShareModel(_Strict):
    accounts: list[str] | None = None
    organization_id: str | None = None
    allow_public: bool | None = None


class RemoteCacheModel(_Strict):
    enabled: bool | None = None
    bucket: str | None = None
    region: str | None = None
    #: The layer (ARN without a version) whose published versions vouch for the shared bucket's bytes.
    publisher: str | None = Field(default=None, pattern=r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:layer:[\w-]+$")


class DeployLockModel(_Strict):
    lease_seconds: int | None = Field(default=None, ge=10)
    heartbeat_seconds: int | None = Field(default=None, ge=1)


class SmokeCaseModel(_Strict):
    name: str | None = None
    event: dict[str, Any]
    expect: dict[str, Any] | None = None


class EmulatorModel(_Strict):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)


class StateModel(_Strict):
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    lock: bool | None = None


class CommonModel(_Strict):
    """Keys allowed both at the top level (defaults) and per environment."""

    region: str | None = None
    profile: str | None = None
    #: The AWS account the environment lives in: a run whose credentials belong to another stops in preflight.
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    endpoint_url: str | None = None
    tfvars: str | None = None
    runtime: str | None = None
    architecture: str | None = None
    builder: str | None = None
    bytecode: bool | None = None
    max_workers: int | None = Field(default=None, ge=1)
    layer: LayerModel | None = None
    verify: VerifyModel | None = None
    share: ShareModel | None = None
    remote_cache: RemoteCacheModel | None = None
    deploy_lock: DeployLockModel | None = None
    smoke: dict[str, list[SmokeCaseModel]] | None = None
    extra_regions: dict[str, str] | None = None


class EnvironmentModel(CommonModel):
    """One environment; ``emulator`` and ``state`` only make sense per environment."""

    emulator: EmulatorModel | None = None
    state: StateModel | None = None


class DeployModel(CommonModel):
    """The whole ``deploy`` tree."""

    environments: dict[str, EnvironmentModel | None] | None = None


# ---------------------------------------------------------------------------
# Validation and its messages


_PROBLEMS = {
    "int_type": "expected an integer",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "list_type": "expected a list",
    "string_pattern_mismatch": "expected an AWS account id (12 digits)",
}


def _unwrap(tp: Any) -> Any:
    """``X | None`` → ``X``."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model allows at ``loc`` (empty where keys are free, e.g. environment names)."""
    tp: Any = DeployModel
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _problem(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = key_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = keys_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return f"`{path}`: unknown key; did you mean `{close[0]}`?"
        return f"`{path}`: unknown key; known keys here: {', '.join(known)}"
    if kind == "missing":
        return f"`{path}`: missing key"
    problem = _PROBLEMS.get(kind, str(error["msg"]).lower())
    return f"`{path}`: {problem}, got {error['input']!r}"


def validated(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The ``deploy`` tree checked against ``DeployModel``, as the keys it sets (``exclude_unset``: a
    key set to null is kept, one left out is not); every problem in one ConfigError (exit 2)."""
    try:
        return DeployModel.model_validate(dict(tree)).model_dump(exclude_unset=True)
    except ValidationError as exc:
        lines = [_problem(error) for error in exc.errors()]
        raise ConfigError(
            "\n".join(lines),
            hint="fix invoke.yaml (or the INVOKE_DEPLOY_… variable that sets the key)",
        ) from None


def section_keys(model: type[BaseModel] = DeployModel) -> dict[str, Any]:
    """Every key of ``model`` as null, nested sections as mappings: what ``deploy.settings.KEYS``
    writes out by hand (a test keeps the two equal)."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        tp = _unwrap(field.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out[name] = section_keys(tp)
        else:  # a mapping keyed by function is declared empty (see deploy.settings._SECTIONS)
            out[name] = {} if get_origin(tp) is dict and get_origin(get_args(tp)[1]) in (list, dict) else None
    return out

"""The settings model: what invoke.yaml's ``deploy`` tree may hold, checked strictly.

Invoke merges its defaults, invoke.yaml and ``INVOKE_*`` variables without looking at
them, so a typo (``verfy:``) or a wrong type (``max_workers: "eight"``) used to load
without a word and quietly fall back to a default. This model forbids unknown keys and
coercion, and turns each problem into one line naming the full key path and, for a near
miss, the key that was probably meant.

Every key an environment may set can also be set at the top level; a key an environment
leaves out (or sets to null) inherits the top-level value, then the built-in default of
``deploy.config.EnvConfig``.

``INVOKE_*`` variables: Invoke only overrides keys it already knows, so ``invoke_defaults``
declares every key (as null) for every environment in invoke.yaml, and
``check_variables`` refuses an ``INVOKE_DEPLOY_…`` variable that names no key. A
variable's text is read as a YAML scalar, like the same text in invoke.yaml (``4`` is
an integer, ``false`` a boolean, an empty value is null), instead of Invoke's casting,
which turns ``false`` into True and fails with a traceback on ``eight`` for an integer.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deploy.errors import ConfigError

PREFIX = "INVOKE_"
ROOT_KEY = "deploy"


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


class ShareModel(_Strict):
    accounts: list[str] | None = None
    organization_id: str | None = None
    allow_public: bool | None = None


class RemoteCacheModel(_Strict):
    enabled: bool | None = None
    bucket: str | None = None
    region: str | None = None


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
}


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("environments", "local", "smoke", "api", 0)`` → ``deploy.environments.local.smoke.api[0]``."""
    text = ROOT_KEY
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


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


def validate(tree: Mapping[str, Any]) -> DeployModel:
    """The ``deploy`` tree as a ``DeployModel``; every problem in one ConfigError (exit 2)."""
    try:
        return DeployModel.model_validate(dict(tree))
    except ValidationError as exc:
        lines = [_problem(error) for error in exc.errors()]
        raise ConfigError(
            "\n".join(lines),
            hint="fix invoke.yaml (or the INVOKE_DEPLOY_… variable that sets the key)",
        ) from None


# ---------------------------------------------------------------------------
# INVOKE_* variables


def variable_name(path: tuple[str, ...]) -> str:
    """``("environments", "local", "runtime")`` → ``INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIME`` (Invoke's rule)."""
    return PREFIX + "_".join((ROOT_KEY, *path)).upper()


def leaves(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key path, value) Invoke treats as a leaf: anything that is not a mapping."""
    for key, value in tree.items():
        here = (*path, str(key))
        if isinstance(value, Mapping):
            yield from leaves(value, here)
        else:
            yield here, value


def _section_defaults(model: type[BaseModel], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every key of ``model`` as null, nested sections as mappings of nulls."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        tp = _unwrap(field.annotation)
        out[name] = _section_defaults(tp) if isinstance(tp, type) and issubclass(tp, BaseModel) else None
    return out


def invoke_defaults(file_tree: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults for ``ns.configure``: every key declared (null = not set, inherit), so that
    Invoke lets an ``INVOKE_…`` variable set it, for every environment invoke.yaml names.
    ``emulator`` and ``state`` are declared only where the environment has that section:
    their presence is what makes an environment local or gives it remote state."""
    tree = file_tree or {}
    envs = tree.get("environments") if isinstance(tree.get("environments"), Mapping) else {}
    per_env: dict[str, Any] = {}
    for name, own in (envs or {}).items():
        own_tree = own if isinstance(own, Mapping) else {}
        section = _section_defaults(EnvironmentModel, skip=("emulator", "state"))
        if "emulator" in own_tree:
            section["emulator"] = _section_defaults(EmulatorModel)
        if "state" in own_tree:
            section["state"] = _section_defaults(StateModel)
        per_env[str(name)] = section
    return {ROOT_KEY: {**_section_defaults(DeployModel, skip=("environments",)), "environments": per_env}}


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _invoke_would_set(value: Any, text: str) -> bool:
    """Whether ``value`` is what Invoke's own cast made of ``text`` (so the variable set it)."""
    if isinstance(value, bool):
        return value == (text not in ("0", ""))
    if isinstance(value, int):
        return text.strip().lstrip("+-").isdigit() and value == int(text)
    return isinstance(value, str) and value == text


def _scalar(text: str, var: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"{var}={text!r} is not a YAML value") from None


def apply_variables(tree: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Re-read each value an ``INVOKE_DEPLOY_…`` variable set as a YAML scalar (see module doc)."""

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = (*path, str(key))
            if isinstance(value, Mapping):
                out[key] = walk(value, here)
                continue
            var = variable_name(here)
            text = environ.get(var)
            out[key] = _scalar(text, var) if text is not None and _invoke_would_set(value, text) else value
        return out

    return walk(tree, ())


def check_variables(file_tree: Mapping[str, Any] | None, environ: Mapping[str, str]) -> None:
    """Refuse ``INVOKE_DEPLOY_…`` variables Invoke would ignore (no such key) or crash on
    (text that is not an integer for an integer key, a list): before Invoke reads them."""
    declared = _merge(invoke_defaults(file_tree), {ROOT_KEY: dict(file_tree or {})})[ROOT_KEY]
    known = {variable_name(path): (path, value) for path, value in leaves(declared)}
    problems: list[str] = []
    for var in sorted(environ):
        if not var.startswith(variable_name(())):
            continue
        if var not in known:
            close = difflib.get_close_matches(var, list(known), n=1, cutoff=0.8)
            guess = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"{var}: no such setting{guess}")
            continue
        path, value = known[var]
        text = environ[var]
        if isinstance(value, list):
            problems.append(f"{var}: `{key_path(path)}` is a list; set it in invoke.yaml")
        elif isinstance(value, int) and not isinstance(value, bool) and not isinstance(_scalar(text, var), int):
            problems.append(f"{var}: `{key_path(path)}`: expected an integer, got {text!r}")
    if problems:
        raise ConfigError(
            "\n".join(problems),
            hint="INVOKE_DEPLOY_<KEY PATH> sets deploy.<key path>, e.g. INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIME",
        )

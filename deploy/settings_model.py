"""The strict pydantic model of ``deploy.settings_schema``'s declaration, and one-line messages.

Built from the declaration, never written by hand. Imported only to validate a tree
``deploy.settings`` has not seen validate before (see its cache): pydantic and the model cost
80 ms, a fifth of a no-op ``inv build-layer``.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from deploy import settings_schema as schema
from deploy.errors import ConfigError


class _Strict(BaseModel):
    """No unknown keys, no coercion: ``"8"`` is not an integer, ``123`` is not a string."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _type(tp: Any, models: dict[type[schema.Section], type[BaseModel]]) -> Any:
    """A declared type with each Section replaced by its model."""
    if schema.is_section(tp):
        return model(tp, models)
    origin = get_origin(tp)
    if origin in (dict, list):
        return origin[tuple(_type(arg, models) for arg in get_args(tp))]
    if origin in (Union, types.UnionType):
        return Union[tuple(_type(arg, models) for arg in get_args(tp))]  # noqa: UP007 (built at run time)
    return tp


def _field(key: schema.Key, models: dict[type[schema.Section], type[BaseModel]]) -> tuple[Any, Any]:
    tp = _type(key.of, models)
    if key.pattern is not None:  # a string, or each string of a list
        checked = Annotated[str, Field(pattern=key.pattern)]
        tp = list[checked] if get_origin(key.of) is list else checked
    if key.default is schema.REQUIRED:
        return tp, Field(ge=key.ge, le=key.le)
    return tp | None, Field(default=None, ge=key.ge, le=key.le)


def model(
    section: type[schema.Section] = schema.Deploy, models: dict[type[schema.Section], type[BaseModel]] | None = None
) -> type[BaseModel]:
    """The strict model of ``section``, built from its declaration (fresh each call: a test may declare more)."""
    models = {} if models is None else models
    if section not in models:
        fields: dict[str, Any] = {}
        for name, item in schema.keys(section).items():
            fields[name] = _field(item, models) if isinstance(item, schema.Key) else (model(item, models) | None, None)
        models[section] = create_model(section.__name__, __base__=_Strict, **fields)
    return models[section]


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


def _problem(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = schema.key_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = schema.keys_at(loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return f"`{path}`: unknown key; did you mean `{close[0]}`?"
        return f"`{path}`: unknown key; known keys here: {', '.join(known)}"
    if kind == "missing":
        return f"`{path}`: missing key"
    declared = schema.at(loc)
    if kind == "string_pattern_mismatch" and isinstance(declared, schema.Key) and declared.expected:
        return f"`{path}`: {error['input']!r} is not {declared.expected}"
    problem = _PROBLEMS.get(kind, str(error["msg"]).lower())
    return f"`{path}`: {problem}, got {error['input']!r}"


def validated(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The ``deploy`` tree checked against the declaration, as the keys it sets (``exclude_unset``: a
    key set to null is kept, one left out is not); every problem in one ConfigError (exit 2)."""
    try:
        return model().model_validate(dict(tree)).model_dump(exclude_unset=True)
    except ValidationError as exc:
        lines = [_problem(error) for error in exc.errors()]
        raise ConfigError(
            "\n".join(lines),
            hint="fix invoke.yaml (or the INVOKE_DEPLOY_… variable that sets the key)",
        ) from None

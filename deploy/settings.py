"""Invoke's side of the settings: every key declared for ``INVOKE_*`` variables, trees checked once.

Invoke merges its defaults, invoke.yaml and ``INVOKE_*`` variables without looking at
them, so a typo (``verfy:``) or a wrong type (``max_workers: "eight"``) used to load
without a word and quietly fall back to a default. This model forbids unknown keys and
coercion, and turns each problem into one line naming the full key path and, for a near
miss, the key that was probably meant.

Every key an environment may set can also be set at the top level; a key an environment
leaves out (or sets to null) inherits the top-level value, then the built-in default of
``deploy.settings_schema``.

``INVOKE_*`` variables: Invoke only overrides keys it already knows, so ``invoke_defaults``
declares every key (as null) for every environment in invoke.yaml, and
``check_variables`` refuses an ``INVOKE_DEPLOY_…`` variable that names no key. A
variable's text is read as a YAML scalar, like the same text in invoke.yaml (``4`` is
an integer, ``false`` a boolean, an empty value is null), instead of Invoke's casting,
which turns ``false`` into True and fails with a traceback on ``eight`` for an integer.

The keys, their types and defaults are declared once, in ``deploy.settings_schema``; this
module does not import pydantic: the model ``deploy.settings_model`` builds from the declaration
is imported only to check a tree not checked before. A tree that passed is remembered in
``.build/settings/`` under the SHA-256 of the tree and of the declaration's and the model's code
(and pydantic's version), so the tasks run every few minutes (a no-op ``build-layer``, ``status``) skip the
80 ms pydantic and the model cost. A tree that fails is never remembered: it fails every time.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from deploy import settings_schema as schema
from deploy.errors import ConfigError
from deploy.files import atomic_write_text
from deploy.settings_schema import ROOT_KEY, key_path

PREFIX = "INVOKE_"

# ---------------------------------------------------------------------------
# Validation, remembered


_MODEL_SOURCE = Path(__file__).with_name("settings_model.py")
_SCHEMA_SOURCE = Path(__file__).with_name("settings_schema.py")


def _model_fingerprint() -> str:
    """The declaration's and the model's code and pydantic's version (its version.py, found without
    importing pydantic)."""
    digest = hashlib.sha256(_SCHEMA_SOURCE.read_bytes() + b"\0" + _MODEL_SOURCE.read_bytes())
    spec = importlib.util.find_spec("pydantic")
    if spec is not None and spec.origin:
        version = Path(spec.origin).with_name("version.py")
        digest.update(version.read_bytes() if version.is_file() else spec.origin.encode())
    return digest.hexdigest()


def _plain(value: Any) -> bool:
    """JSON's own types with string keys only: then ``json.dumps`` keeps every type apart (``1`` is not
    ``"1"``) and gives the values back unchanged, so the text can name the tree and hold its result."""
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float)


def validate(tree: Mapping[str, Any], *, remember: Path | None = None) -> dict[str, Any]:
    """The ``deploy`` tree checked strictly (see ``deploy.settings_model``), as the keys it sets.

    ``remember``: a folder where a tree that passed is kept, so the same tree with the same model
    is not checked again. A tree with anything JSON would change (an integer key, a YAML date) is
    checked every time and never remembered; neither is a tree that fails.
    """
    path = None
    if remember is not None and _plain(tree):
        text = json.dumps(tree, sort_keys=True)
        key = hashlib.sha256(f"{_model_fingerprint()}\0{text}".encode()).hexdigest()
        path = remember / f"{key}.json"
        try:
            found: dict[str, Any] = json.loads(path.read_text())
            return found
        except (OSError, ValueError):
            pass
    from deploy.settings_model import validated

    from_model = validated(tree)
    if path is None:
        return from_model
    # Through JSON, so a remembered tree and a freshly checked one are the same values.
    stored = json.dumps(from_model, sort_keys=True)
    result: dict[str, Any] = json.loads(stored)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, stored)
        _keep_newest(path.parent, REMEMBERED)
    except OSError:
        pass  # an unwritable build folder only costs the next run the check
    return result


#: Remembered trees kept (each a few kB): one per combination of invoke.yaml and INVOKE_* variables in use.
REMEMBERED = 32


def _keep_newest(folder: Path, keep: int) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)


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


def _nulls(section: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every key of ``section`` as null, nested sections as mappings of nulls."""
    return {k: (_nulls(v) if isinstance(v, Mapping) else None) for k, v in section.items() if k not in skip}


def invoke_defaults(file_tree: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults for ``ns.configure``: every key declared (null = not set, inherit), so that
    Invoke lets an ``INVOKE_…`` variable set it, for every environment invoke.yaml names.
    ``emulator`` and ``state`` are declared only where the environment has that section:
    their presence is what makes an environment local or gives it remote state."""
    tree = file_tree or {}
    envs = tree.get("environments") if isinstance(tree.get("environments"), Mapping) else {}
    environment_keys = schema.declared(schema.Environment)
    per_env: dict[str, Any] = {}
    for name, own in (envs or {}).items():
        own_tree = own if isinstance(own, Mapping) else {}
        section = _nulls(environment_keys, skip=("emulator", "state"))
        if "emulator" in own_tree:
            section["emulator"] = _nulls(environment_keys["emulator"])
        if "state" in own_tree:
            section["state"] = _nulls(environment_keys["state"])
        per_env[str(name)] = section
    return {ROOT_KEY: {**_nulls(schema.declared(schema.Deploy), skip=("environments",)), "environments": per_env}}


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

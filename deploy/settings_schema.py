"""invoke.yaml's ``deploy`` tree, declared once: every key, its type, its default, its limits.

Everything else is derived from these classes, so a key is added, renamed or given another
default here and nowhere else: the key list Invoke needs to let an ``INVOKE_DEPLOY_…`` variable
set it (``declared``), the strict pydantic model that checks a tree (``deploy.settings_model``
builds it from these classes), the defaults ``deploy.config.load_env`` falls back to, and the
choices it checks a value against.

A ``Section`` is a mapping with fixed keys; each ``Key`` attribute is a leaf and each
``Section`` subclass attribute a nested section. Every key may be left out (or null): an
environment then inherits the top level's value, then the key's ``default``. Only a record
inside a list (a smoke event) has keys that must be set (``REQUIRED``).

This module imports no pydantic (80 ms a no-op task would pay): see ``deploy.settings``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal, Union, get_args, get_origin

from deploy.install import INSTALLERS
from deploy.lambda_facts import ARCHITECTURES, RUNTIME_GLIBC

ROOT_KEY = "deploy"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key a record must set (see SmokeCase.event).
REQUIRED: Any = _Required()

_LAYER = r"arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:layer:[\w-]+"


@dataclass(frozen=True)
class Key:
    """One setting: ``of`` is its type, checked strictly (``"8"`` is not an integer)."""

    of: Any
    _: KW_ONLY
    #: What a task uses when neither the environment nor the top level sets the key.
    default: Any
    ge: int | None = None
    le: int | None = None
    #: A string (or each string of a list) must match this; ``expected`` says what it should be.
    pattern: str | None = None
    #: The allowed values, read when a value is checked (a builder registered later counts).
    choices: Callable[[], Iterable[str]] | None = None
    #: For a value ``pattern`` or ``choices`` refuse: "'x' is not {expected}".
    expected: str = ""


class Section:
    """A mapping with fixed keys: its ``Key`` attributes and nested ``Section`` classes."""


def is_section(item: Any) -> bool:
    return isinstance(item, type) and issubclass(item, Section)


def keys(section: type[Section]) -> dict[str, Key | type[Section]]:
    """The section's keys in the order written (a subclass's after its bases')."""
    out: dict[str, Key | type[Section]] = {}
    for klass in reversed(section.__mro__):
        out.update({k: v for k, v in vars(klass).items() if isinstance(v, Key) or is_section(v)})
    return out


# ---------------------------------------------------------------------------
# The declaration


class Layer(Section):
    """Packaging options; part of the layer identity because they change its bytes."""

    exclude_runtime_boto = Key(bool, default=False)
    strip_tests = Key(bool, default=False)


class Verify(Section):
    remote = Key(bool, default=False)
    #: Layer ARNs (account and name; any version) not ours whose code verify may run.
    trusted_layers = Key(
        list[str],
        default=(),
        pattern=rf"^{_LAYER}(:\d+)?$",
        expected="a layer ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME)",
    )
    #: ``bwrap`` jails the sandbox; ``none`` (no bwrap, e.g. macOS) does not.
    isolation = Key(Literal["bwrap", "none"], default="bwrap")
    #: Function key (or ``*`` for all) -> variables the sandbox forces; ``{tmp}`` is its scratch folder.
    sandbox_env = Key(dict[str, dict[str, str]], default={})


class Share(Section):
    accounts = Key(list[str], default=())
    organization_id = Key(str, default=None)
    allow_public = Key(bool, default=False)


class RemoteCache(Section):
    enabled = Key(bool, default=True)
    bucket = Key(str, default=None)
    region = Key(str, default=None)  # None: the environment's region
    #: The layer (ARN without a version) whose published versions vouch for the shared bucket's bytes.
    publisher = Key(
        str,
        default=None,
        pattern=rf"^{_LAYER}$",
        expected="a layer ARN without a version (arn:aws:lambda:REGION:ACCOUNT:layer:NAME)",
    )


class DeployLock(Section):
    lease_seconds = Key(int, default=180, ge=10)
    heartbeat_seconds = Key(int, default=30, ge=1)


class SmokeCase(Section):
    """One smoke event of a function (a record in a list: ``event`` must be set)."""

    name = Key(str, default=None)  # None: <function>-<index>
    event = Key(dict[str, Any], default=REQUIRED)
    expect = Key(dict[str, Any], default={})


class Emulator(Section):
    host = Key(str, default="127.0.0.1")
    port = Key(int, default=5000, ge=1, le=65535)


class State(Section):
    bucket = Key(str, default=None)  # required once the section is there (deploy.config)
    key = Key(str, default="terraform.tfstate")
    region = Key(str, default=None)  # None: the environment's region
    lock = Key(bool, default=True)


class Common(Section):
    """Keys allowed both at the top level (defaults) and per environment."""

    region = Key(str, default=None)  # required after inheritance (deploy.config)
    profile = Key(str, default=None)
    #: The AWS account the environment lives in: a run whose credentials belong to another stops in preflight.
    account_id = Key(str, default=None, pattern=r"^\d{12}$", expected="an AWS account id (12 digits)")
    endpoint_url = Key(str, default=None)  # None: the emulator's, for an environment with one
    tfvars = Key(str, default=None)  # None: envs/<environment>.tfvars
    runtime = Key(str, default="python3.12", choices=lambda: RUNTIME_GLIBC, expected="a supported runtime")
    architecture = Key(str, default="x86_64", choices=lambda: ARCHITECTURES, expected="an architecture Lambda offers")
    builder = Key(str, default="uv", choices=lambda: INSTALLERS, expected="a builder")
    #: Ship precompiled .pyc in the layer and the function code (see deploy/bytecode.py).
    bytecode = Key(bool, default=True)
    max_workers = Key(int, default=8, ge=1)
    #: Lambda SnapStart on the functions' published versions (Terraform sets it; python3.12 and later).
    snap_start = Key(bool, default=False)
    #: Warm execution environments put on each newly published version, READY before its alias moves.
    provisioned_concurrency = Key(int, default=0, ge=0)
    layer = Layer
    verify = Verify
    share = Share
    remote_cache = RemoteCache
    deploy_lock = DeployLock
    #: Function key -> its smoke events (an environment's replace the top level's).
    smoke = Key(dict[str, list[SmokeCase]], default={})
    #: Region -> artifact bucket, for layers published to more regions.
    extra_regions = Key(dict[str, str], default={})


class Environment(Common):
    """One environment; ``emulator`` and ``state`` only make sense per environment, and their
    presence (even empty) is what makes it local or gives it remote state."""

    emulator = Emulator
    state = State


class Deploy(Common):
    """The whole ``deploy`` tree."""

    environments = Key(dict[str, Environment | None], default={})


# ---------------------------------------------------------------------------
# Derived


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("environments", "local", "smoke", "notifier", 0)`` → ``deploy.environments.local.smoke.notifier[0]``."""
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


def _per_function(key: Key) -> bool:
    """A mapping whose keys the user chooses (function keys) of lists or mappings."""
    return get_origin(key.of) is dict and get_origin(get_args(key.of)[1]) in (list, dict)


def declared(section: type[Section]) -> dict[str, Any]:
    """Every key of ``section`` as null, nested sections as mappings: what Invoke must know of to let
    a variable set it. A per-function mapping is declared ``{}``, never null: Invoke cannot merge a
    null default with the mapping invoke.yaml sets (``AmbiguousMergeError``)."""
    out: dict[str, Any] = {}
    for name, item in keys(section).items():
        if isinstance(item, Key):
            out[name] = {} if _per_function(item) else None
        else:
            out[name] = declared(item)
    return out


def at(loc: tuple[int | str, ...], root: type[Section] = Deploy) -> Key | type[Section] | None:
    """The key (or section) the model allows at ``loc``; None where keys are free (environment names)."""
    item: Key | type[Section] = root
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if is_section(tp):
            found = keys(tp).get(str(part))
            if found is None:
                return None
            item = found
            tp = found.of if isinstance(found, Key) else found
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
        tp = _unwrap(tp)
        if is_section(tp):
            item = tp
    return item


def keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at ``loc`` (empty where keys are free, e.g. environment names)."""
    item = at(loc)
    return list(keys(item)) if isinstance(item, type) and issubclass(item, Section) else []


def leaf(*names: str, root: type[Section] = Environment) -> Key:
    """The ``Key`` at a path of names (``leaf("deploy_lock", "lease_seconds")``)."""
    found = at(names, root)
    if not isinstance(found, Key):
        raise KeyError(".".join(names))
    return found


def leaves(section: type[Section] = Environment, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Key]]:
    """Every (key path, Key) of ``section``, nested sections walked."""
    out: list[tuple[tuple[str, ...], Key]] = []
    for name, item in keys(section).items():
        if isinstance(item, Key):
            out.append(((*path, name), item))
        else:
            out.extend(leaves(item, (*path, name)))
    return out

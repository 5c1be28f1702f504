"""Settings: invoke.yaml's ``deploy`` tree → one frozen ``EnvConfig`` per environment.

Settings flow one way (Invoke defaults → invoke.yaml → ``INVOKE_*`` variables → flags);
this module only validates what Invoke merged and names the key at fault. Resource
names (bucket, layer, functions) never live here: they come from Terraform outputs
as ``Targets`` (see ``deploy.terraform.targets``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.errors import ConfigError

#: Lambda's Python runtimes we can target, with the glibc of the Amazon Linux they run on.
RUNTIME_GLIBC: Mapping[str, tuple[int, int]] = {
    "python3.9": (2, 26),
    "python3.10": (2, 26),
    "python3.11": (2, 26),
    "python3.12": (2, 34),
    "python3.13": (2, 34),
}
ARCHITECTURES = ("x86_64", "arm64")
BUILDERS = ("uv", "pip", "docker")

ROOT = Path(__file__).resolve().parent.parent

_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_LAYER_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:layer:[\w-]+(:\d+)?$")


@dataclass(frozen=True, kw_only=True)
class Paths:
    """Where things live in a checkout; tests point ``root`` at a temporary copy."""

    root: Path = ROOT

    @property
    def backend(self) -> Path:
        return self.root / "backend"

    @property
    def requirements(self) -> Path:
        return self.backend / "requirements.txt"

    @property
    def poetry_lock(self) -> Path:
        return self.backend / "poetry.lock"

    @property
    def build(self) -> Path:
        return self.root / ".build"

    @property
    def local_state(self) -> Path:
        """Git-ignored folder for the emulator's pidfile and log."""
        return self.root / ".local"

    @property
    def terraform(self) -> Path:
        return self.root / "infra" / "terraform"


@dataclass(frozen=True, kw_only=True)
class LayerOptions:
    """Packaging options; part of the layer identity because they change its bytes."""

    exclude_runtime_boto: bool = False
    strip_tests: bool = False


@dataclass(frozen=True, kw_only=True)
class EmulatorSettings:
    host: str = "127.0.0.1"
    port: int = 5000

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class SmokeCase:
    """One smoke event for one function and what its answer must look like."""

    name: str
    event: Mapping[str, Any]
    expect: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class VerifySettings:
    remote: bool = False
    smoke: Mapping[str, tuple[SmokeCase, ...]] = field(default_factory=dict)
    #: Layer ARNs (account and name; any version) not ours whose code verify may run.
    trusted_layers: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ShareSettings:
    """Cross-account layer sharing; a public share needs ``allow_public``."""

    accounts: tuple[str, ...] = ()
    organization_id: str | None = None
    allow_public: bool = False


@dataclass(frozen=True, kw_only=True)
class StateSettings:
    """Where Terraform keeps this environment's state: an S3 bucket (created if missing).

    Remote state is what lets CI runners, which start empty, see what the last deploy made;
    for ``local`` the bucket lives in the emulator, so a fresh emulator is a fresh state.
    """

    bucket: str
    key: str = "terraform.tfstate"
    region: str | None = None  # default: the environment's region
    lock: bool = True  # S3-native lock file (Terraform >= 1.10)


#: The emulator's state bucket when invoke.yaml names none: it only ever exists inside moto.
EMULATOR_STATE = StateSettings(bucket="terraform-state", key="terraform.tfstate")


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Everything a task needs to know about one environment, before Terraform."""

    name: str
    region: str
    extra_regions: Mapping[str, str] = field(default_factory=dict)  # region -> bucket
    profile: str | None = None
    endpoint_url: str | None = None
    emulator: EmulatorSettings | None = None
    tfvars: str = ""
    runtime: str = "python3.12"
    architecture: str = "x86_64"
    builder: str = "uv"
    layer: LayerOptions = field(default_factory=LayerOptions)
    verify: VerifySettings = field(default_factory=VerifySettings)
    share: ShareSettings = field(default_factory=ShareSettings)
    state: StateSettings | None = None
    max_workers: int = 8
    paths: Paths = field(default_factory=Paths)

    @property
    def is_local(self) -> bool:
        return self.emulator is not None

    @property
    def glibc_floor(self) -> tuple[int, int]:
        return RUNTIME_GLIBC[self.runtime]

    @property
    def python_version(self) -> str:
        """``python3.12`` → ``3.12``."""
        return self.runtime.removeprefix("python")


@dataclass(frozen=True, kw_only=True)
class FunctionTarget:
    """One deployed function as Terraform created it."""

    key: str  # logical name: api, cleanup, db_sync, eval_runbook_worker
    name: str  # the Lambda function name
    handler: str


@dataclass(frozen=True, kw_only=True)
class Targets:
    """Resource names for one environment, read from ``terraform output -json``."""

    env: str
    region: str
    bucket: str
    layer_name: str
    runtime: str
    architecture: str
    functions: tuple[FunctionTarget, ...]
    alias: str = "live"

    def function(self, key: str) -> FunctionTarget:
        for fn in self.functions:
            if key in (fn.key, fn.name):
                return fn
        known = ", ".join(f.key for f in self.functions)
        raise ConfigError(f"unknown function {key!r}; known: {known}")


# ---------------------------------------------------------------------------
# Validation of the merged Invoke settings


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"invoke.yaml: {key} must be a mapping, got {type(value).__name__}")
    return value


def _str(tree: Mapping[str, Any], name: str, key: str, default: str | None = None) -> str:
    value = tree.get(name, default)
    if value is None:
        raise ConfigError(f"invoke.yaml: missing key {key}.{name}")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"invoke.yaml: {key}.{name} must be a non-empty string")
    return value


def _bool(tree: Mapping[str, Any], name: str, key: str, default: bool) -> bool:
    value = tree.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"invoke.yaml: {key}.{name} must be true or false, got {value!r}")
    return value


def known_envs(settings: Mapping[str, Any]) -> tuple[str, ...]:
    envs = _mapping(settings.get("environments"), "deploy.environments")
    return tuple(sorted(envs))


def load_env(settings: Mapping[str, Any] | None, name: str, *, paths: Paths | None = None) -> EnvConfig:
    """Validate the ``deploy`` settings tree and return the config of environment ``name``.

    ``settings`` is Invoke's merged ``c.config.deploy`` (or a plain dict in tests).
    Per-environment keys override the top-level defaults (runtime, architecture, ...).
    """
    if settings is None or not isinstance(settings, Mapping) or not settings:
        raise ConfigError(
            "invoke.yaml: missing key deploy",
            hint="run tasks from the project root, where invoke.yaml defines deploy.environments",
        )
    envs = _mapping(settings.get("environments"), "deploy.environments")
    if not envs:
        raise ConfigError("invoke.yaml: missing key deploy.environments")
    if name not in envs:
        raise ConfigError(f"unknown environment {name!r}; known environments: {', '.join(sorted(envs))}")
    if not _ENV_NAME.match(name):
        raise ConfigError(f"invoke.yaml: environment name {name!r} must match {_ENV_NAME.pattern}")
    key = f"deploy.environments.{name}"
    own = _mapping(envs[name], key)
    merged: dict[str, Any] = {k: v for k, v in settings.items() if k != "environments"}
    merged.update(own)

    runtime = _str(merged, "runtime", key, "python3.12")
    if runtime not in RUNTIME_GLIBC:
        raise ConfigError(
            f"invoke.yaml: {key}.runtime {runtime!r} is not supported; choose one of {', '.join(RUNTIME_GLIBC)}"
        )
    architecture = _str(merged, "architecture", key, "x86_64")
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"invoke.yaml: {key}.architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    builder = _str(merged, "builder", key, "uv")
    if builder not in BUILDERS:
        raise ConfigError(f"invoke.yaml: {key}.builder {builder!r} is not one of {', '.join(BUILDERS)}")

    emulator = None
    endpoint_url = merged.get("endpoint_url")
    if "emulator" in own:
        em = _mapping(own["emulator"], f"{key}.emulator")
        port = em.get("port", 5000)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"invoke.yaml: {key}.emulator.port must be a TCP port number, got {port!r}")
        host = _str(em, "host", f"{key}.emulator", "127.0.0.1")
        emulator = EmulatorSettings(host=host, port=port)
        endpoint_url = endpoint_url or emulator.url
    if endpoint_url is not None and not isinstance(endpoint_url, str):
        raise ConfigError(f"invoke.yaml: {key}.endpoint_url must be a URL string")

    layer_tree = _mapping(merged.get("layer"), f"{key}.layer")
    layer = LayerOptions(
        exclude_runtime_boto=_bool(layer_tree, "exclude_runtime_boto", f"{key}.layer", False),
        strip_tests=_bool(layer_tree, "strip_tests", f"{key}.layer", False),
    )

    verify_tree = _mapping(merged.get("verify"), f"{key}.verify")
    smoke: dict[str, tuple[SmokeCase, ...]] = {}
    for fn_key, cases in _mapping(merged.get("smoke"), f"{key}.smoke").items():
        if not isinstance(cases, list):
            raise ConfigError(f"invoke.yaml: {key}.smoke.{fn_key} must be a list of cases")
        parsed = []
        for i, case in enumerate(cases):
            case_key = f"{key}.smoke.{fn_key}[{i}]"
            case_map = _mapping(case, case_key)
            if "event" not in case_map:
                raise ConfigError(f"invoke.yaml: missing key {case_key}.event")
            parsed.append(
                SmokeCase(
                    name=_str(case_map, "name", case_key, f"{fn_key}-{i}"),
                    event=_mapping(case_map["event"], f"{case_key}.event"),
                    expect=_mapping(case_map.get("expect"), f"{case_key}.expect"),
                )
            )
        smoke[str(fn_key)] = tuple(parsed)
    trusted = verify_tree.get("trusted_layers", []) or []
    if not isinstance(trusted, list) or not all(isinstance(a, str) and _LAYER_ARN.match(a) for a in trusted):
        raise ConfigError(
            f"invoke.yaml: {key}.verify.trusted_layers must be a list of layer ARNs "
            "(arn:aws:lambda:REGION:ACCOUNT:layer:NAME)"
        )
    verify = VerifySettings(
        remote=_bool(verify_tree, "remote", f"{key}.verify", False), smoke=smoke, trusted_layers=tuple(trusted)
    )

    share_tree = _mapping(merged.get("share"), f"{key}.share")
    accounts = share_tree.get("accounts", []) or []
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise ConfigError(f"invoke.yaml: {key}.share.accounts must be a list of account IDs (strings)")
    share = ShareSettings(
        accounts=tuple(accounts),
        organization_id=share_tree.get("organization_id"),
        allow_public=_bool(share_tree, "allow_public", f"{key}.share", False),
    )

    state = None
    if "state" in own:
        state_tree = _mapping(own["state"], f"{key}.state")
        lock = state_tree.get("lock", True)
        if not isinstance(lock, bool):
            raise ConfigError(f"invoke.yaml: {key}.state.lock must be true or false")
        region = state_tree.get("region")
        if region is not None and not isinstance(region, str):
            raise ConfigError(f"invoke.yaml: {key}.state.region must be a string")
        state = StateSettings(
            bucket=_str(state_tree, "bucket", f"{key}.state"),
            key=_str(state_tree, "key", f"{key}.state", "terraform.tfstate"),
            region=region,
            lock=lock,
        )
    elif emulator is not None:
        state = EMULATOR_STATE

    extra = _mapping(merged.get("extra_regions"), f"{key}.extra_regions")
    max_workers = merged.get("max_workers", 8)
    if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
        raise ConfigError(f"invoke.yaml: {key}.max_workers must be a positive integer")
    # An empty profile (e.g. INVOKE_DEPLOY_ENVIRONMENTS_STAGING_PROFILE="" under OIDC in CI)
    # means boto3's default credential chain.
    profile = merged.get("profile") or None
    if profile is not None and not isinstance(profile, str):
        raise ConfigError(f"invoke.yaml: {key}.profile must be a string or null")

    return EnvConfig(
        name=name,
        region=_str(merged, "region", key),
        extra_regions={str(r): str(b) for r, b in extra.items()},
        profile=profile,
        endpoint_url=endpoint_url,
        emulator=emulator,
        tfvars=_str(merged, "tfvars", key, f"envs/{name}.tfvars"),
        runtime=runtime,
        architecture=architecture,
        builder=builder,
        layer=layer,
        verify=verify,
        share=share,
        state=state,
        max_workers=max_workers,
        paths=paths or Paths(),
    )

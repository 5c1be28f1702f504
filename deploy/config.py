"""Settings: invoke.yaml's ``deploy`` tree → one frozen ``EnvConfig`` per environment.

Settings flow one way (Invoke defaults → invoke.yaml → ``INVOKE_*`` variables → flags);
this module only validates what Invoke merged and names the key at fault. Every key, its
type, default and choices are declared once, in ``deploy.settings_schema``. Resource
names (bucket, layer, functions) never live here: they come from Terraform outputs
as ``Targets`` (see ``deploy.terraform.targets``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deploy.errors import ConfigError
from deploy.lambda_facts import ARCHITECTURES, RUNTIME_GLIBC, snap_start_supported
from deploy.settings import apply_variables, validate
from deploy.settings_schema import (
    Common,
    DeployLock,
    Emulator,
    Layer,
    RemoteCache,
    Section,
    Share,
    State,
    Verify,
    key_path,
    keys,
    leaf,
)

__all__ = ["ARCHITECTURES", "RUNTIME_GLIBC"]

ROOT = Path(__file__).resolve().parent.parent

_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


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

    exclude_runtime_boto: bool = Layer.exclude_runtime_boto.default
    strip_tests: bool = Layer.strip_tests.default


@dataclass(frozen=True, kw_only=True)
class EmulatorSettings:
    host: str = Emulator.host.default
    port: int = Emulator.port.default

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
    remote: bool = Verify.remote.default
    smoke: Mapping[str, tuple[SmokeCase, ...]] = field(default_factory=dict)
    #: Layer ARNs (account and name; any version) not ours whose code verify may run.
    trusted_layers: tuple[str, ...] = Verify.trusted_layers.default
    #: ``bwrap`` jails the sandbox (``deploy.verify.jail``); ``none`` (no bwrap, e.g. macOS) does not,
    #: and every run says the sandbox can read the deployer's credentials.
    isolation: Literal["bwrap", "none"] = Verify.isolation.default
    #: Variables the sandbox forces, by function key or ``*`` (invoke.yaml ``verify.sandbox_env``): the
    #: sandbox runs outside the VPC and must never reach real databases or services.
    sandbox_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: A function with no smoke events (only imported) fails verify (``--strict``, on in CI).
    strict: bool = False


@dataclass(frozen=True, kw_only=True)
class ShareSettings:
    """Cross-account layer sharing; a public share needs ``allow_public``."""

    accounts: tuple[str, ...] = Share.accounts.default
    organization_id: str | None = Share.organization_id.default
    allow_public: bool = Share.allow_public.default


@dataclass(frozen=True, kw_only=True)
class RemoteCacheSettings:
    """Reading layers another machine built through S3 (``deploy.aws.cache``).

    ``bucket`` names a cache shared across environments (e.g. staging's artifact bucket, read by
    production), read before the environment's own artifact bucket: production then runs exactly
    the bytes staging verified. The bucket's policy must let this environment's role read
    ``lambda/layer-*`` (Terraform: ``layer_cache_reader_accounts`` on the owning environment).

    Whoever can write that bucket could otherwise choose production's layer: ``publisher`` (a layer
    ARN without a version, e.g. staging's layer) names the layer whose versions vouch for it. A
    zip from the shared bucket is used only when its sha256 is the CodeSha256 of the version the
    publisher published with the same identity; Lambda, not the bucket, says what was published."""

    enabled: bool = RemoteCache.enabled.default
    bucket: str | None = RemoteCache.bucket.default
    region: str | None = RemoteCache.region.default  # None: the environment's region
    publisher: str | None = RemoteCache.publisher.default  # required with ``bucket``


def _cache_publisher(lookup: Callable[..., tuple[Any, tuple[str, ...]]]) -> str | None:
    """``remote_cache.publisher``, required whenever a shared bucket is read.

    No fallback to trusting the bucket alone: that is exactly the hole the setting closes, and
    silently ignoring the bucket instead would turn a missing line into slower builds nobody
    notices. A cache turned off (``enabled: false``) needs no publisher."""
    bucket, _ = lookup("remote_cache", "bucket")
    enabled, _ = lookup("remote_cache", "enabled")
    publisher, at = lookup("remote_cache", "publisher")  # its form: the declaration's pattern
    if bucket and enabled is not False and publisher is None:
        raise ConfigError(
            f"`{key_path(at)}`: missing key; the shared cache bucket {bucket!r} is trusted only for bytes a "
            "layer version of the publisher carries",
            hint="set remote_cache.publisher to the ARN (no version) of the layer the environment that fills "
            "the bucket publishes, e.g. arn:aws:lambda:us-west-2:111122223333:layer:app-staging-deps",
        )
    return None if publisher is None else str(publisher)


@dataclass(frozen=True, kw_only=True)
class DeployLockSettings:
    """The deploy lock's lease (``deploy.aws.lock``): a lock its holder has not renewed for
    ``lease_seconds`` is taken over; the holder renews it every ``heartbeat_seconds``."""

    lease_seconds: int = DeployLock.lease_seconds.default
    heartbeat_seconds: int = DeployLock.heartbeat_seconds.default


@dataclass(frozen=True, kw_only=True)
class StateSettings:
    """Where Terraform keeps this environment's state: an S3 bucket (created if missing).

    Remote state is what lets CI runners, which start empty, see what the last deploy made;
    for ``local`` the bucket lives in the emulator, so a fresh emulator is a fresh state.
    """

    bucket: str
    key: str = State.key.default
    region: str | None = State.region.default  # None: the environment's region
    lock: bool = State.lock.default  # S3-native lock file (Terraform >= 1.10)


#: The emulator's state bucket when invoke.yaml names none: it only ever exists inside moto.
EMULATOR_STATE = StateSettings(bucket="terraform-state", key="terraform.tfstate")


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Everything a task needs to know about one environment, before Terraform."""

    name: str
    region: str
    extra_regions: Mapping[str, str] = field(default_factory=dict)  # region -> bucket
    profile: str | None = None
    #: invoke.yaml's ``account_id``: the preflight refuses credentials of any other account.
    account_id: str | None = None
    endpoint_url: str | None = None
    emulator: EmulatorSettings | None = None
    tfvars: str = ""
    runtime: str = Common.runtime.default
    architecture: str = Common.architecture.default
    builder: str = Common.builder.default
    #: Ship precompiled .pyc in the layer and the function code (see deploy/bytecode.py).
    bytecode: bool = Common.bytecode.default
    layer: LayerOptions = field(default_factory=LayerOptions)
    verify: VerifySettings = field(default_factory=VerifySettings)
    share: ShareSettings = field(default_factory=ShareSettings)
    remote_cache: RemoteCacheSettings = field(default_factory=RemoteCacheSettings)
    state: StateSettings | None = None
    deploy_lock: DeployLockSettings = field(default_factory=DeployLockSettings)
    max_workers: int = Common.max_workers.default
    #: SnapStart on published versions (Terraform's ``snap_start`` variable; python3.12 and later).
    snap_start: bool = Common.snap_start.default
    #: Warm environments on each new version, READY before its alias moves (deploy.aws.readiness).
    provisioned_concurrency: int = Common.provisioned_concurrency.default
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

    key: str  # its key in Terraform's var.functions
    name: str  # the Lambda function name
    handler: str
    # From Terraform's deploy_targets (None: an older output without them; the environment's values apply)
    runtime: str | None = None
    architecture: str | None = None
    region: str | None = None
    #: backend/-relative paths its code needs (var.functions); () from an output without them.
    sources: tuple[str, ...] = ()


def unknown_function(key: str, known: Sequence[str]) -> str:
    """``unknown function 'notifer'; did you mean 'notifier'? (functions: notifier, reporter)``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown function {key!r}{guess} (functions: {', '.join(known) or 'none'})"


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
        raise ConfigError(unknown_function(key, [f.key for f in self.functions]))


# ---------------------------------------------------------------------------
# From the merged Invoke settings to EnvConfig (the checking is deploy.settings' model)


def _smoke(tree: Mapping[str, Any], at: tuple[str, ...]) -> dict[str, tuple[SmokeCase, ...]]:
    """invoke.yaml's smoke events (an environment's ``smoke`` replaces the top level's); an event
    Lambda could not carry (not JSON: a YAML date, a NaN) is refused here, naming its key path.
    Whether each key is a deployed function is checked where the targets are known
    (``deploy.verify.smoke.smoke_for``)."""
    smoke: dict[str, tuple[SmokeCase, ...]] = {}
    for fn_key, cases in tree.items():
        for i, case in enumerate(cases):
            try:
                json.dumps(case["event"], allow_nan=False)
            except (TypeError, ValueError) as exc:
                where = key_path((*at, "smoke", fn_key, i, "event"))
                raise ConfigError(f"`{where}`: not JSON ({exc}); a Lambda event is JSON") from None
        smoke[fn_key] = tuple(
            SmokeCase(name=case.get("name") or f"{fn_key}-{i}", event=case["event"], expect=case.get("expect") or {})
            for i, case in enumerate(cases)
        )
    return smoke


def load_env(
    settings: Mapping[str, Any] | None,
    name: str,
    *,
    paths: Paths | None = None,
    environ: Mapping[str, str] | None = None,
    remember: Path | None = None,
) -> EnvConfig:
    """Validate the ``deploy`` settings tree and return the config of environment ``name``.

    ``settings`` is Invoke's merged ``c.config.deploy`` (or a plain dict in tests);
    ``environ`` the process environment, whose ``INVOKE_DEPLOY_…`` values are re-read as
    YAML (see ``deploy.settings``). Per-environment keys override the top-level ones.
    ``remember``: where a tree that passed the check is kept (``deploy.settings.validate``).
    """
    if settings is None or not isinstance(settings, Mapping) or not settings:
        raise ConfigError(
            "invoke.yaml: missing key deploy",
            hint="run tasks from the project root, where invoke.yaml defines deploy.environments",
        )
    top = validate(apply_variables(settings, environ or {}), remember=remember)
    environments = top.get("environments") or {}
    if not environments:
        raise ConfigError("invoke.yaml: missing key deploy.environments")
    if name not in environments:
        raise ConfigError(f"unknown environment {name!r}; known environments: {', '.join(sorted(environments))}")
    if not _ENV_NAME.match(name):
        raise ConfigError(f"invoke.yaml: environment name {name!r} must match {_ENV_NAME.pattern}")
    own: Mapping[str, Any] = environments[name] or {}

    def lookup(*names: str) -> tuple[Any, tuple[str, ...]]:
        """The environment's value of a key, else the top level's: (value, its key path)."""
        sources: tuple[tuple[Any, tuple[str, ...]], ...] = ((own, ("environments", name)), (top, ()))
        for source, prefix in sources:
            found = source
            for key in names:
                found = found.get(key) if isinstance(found, Mapping) else None
            if found is not None:
                return found, (*prefix, *names)
        return None, ("environments", name, *names)

    def value(*names: str) -> Any:
        """The key's value after inheritance, else its declared default; a value outside the
        key's declared choices names the key and the choices."""
        found, at = lookup(*names)
        key = leaf(*names)
        if found is None:
            return key.default
        if key.choices is not None and found not in (allowed := tuple(key.choices())):
            raise ConfigError(f"`{key_path(at)}`: {found!r} is not {key.expected}; choose one of {', '.join(allowed)}")
        return found

    def section(name: str, cls: type[Section]) -> dict[str, Any]:
        """Every key of a section that maps onto one settings class, lists frozen as tuples."""
        values = {key: value(name, key) for key in keys(cls)}
        return {key: tuple(v) if isinstance(v, list) else v for key, v in values.items()}

    runtime, architecture, builder = value("runtime"), value("architecture"), value("builder")
    tfvars = value("tfvars")

    emulator = None
    endpoint_url = value("endpoint_url")
    if "emulator" in own:  # the section's presence (even empty) makes an environment local
        em = own["emulator"] or {}
        emulator = EmulatorSettings(
            host=em.get("host") or Emulator.host.default, port=em.get("port") or Emulator.port.default
        )
        endpoint_url = endpoint_url or emulator.url

    smoke = _smoke(own.get("smoke") or top.get("smoke") or {}, ("environments", name) if own.get("smoke") else ())
    sandbox_env = (own.get("verify") or {}).get("sandbox_env") or (top.get("verify") or {}).get("sandbox_env")

    state = None
    if "state" in own:
        st = own["state"] or {}
        if not st.get("bucket"):
            raise ConfigError(f"`{key_path(('environments', name, 'state', 'bucket'))}`: missing key")
        state = StateSettings(
            bucket=st["bucket"],
            key=st.get("key") or State.key.default,
            region=st.get("region"),
            lock=st.get("lock") is not False,
        )
    elif emulator is not None:
        state = EMULATOR_STATE

    lease = value("deploy_lock", "lease_seconds")
    heartbeat = value("deploy_lock", "heartbeat_seconds")
    if heartbeat * 2 > lease:  # a single late renewal must not let the lease run out
        raise ConfigError(
            f"`{key_path(lookup('deploy_lock', 'heartbeat_seconds')[1])}`: {heartbeat} s is more than half "
            f"the lease ({lease} s, `deploy_lock.lease_seconds`)"
        )

    snap_start = value("snap_start")
    if snap_start and not snap_start_supported(runtime):
        raise ConfigError(
            f"invoke.yaml: `{key_path(lookup('snap_start')[1])}`: SnapStart needs python3.12 or later; "
            f"this environment's runtime is {runtime} (`{key_path(lookup('runtime')[1])}`)",
            hint="remove snap_start or move the environment to python3.12 or later",
        )
    if snap_start and emulator is not None:
        # moto answers every function with SnapStart ApplyOn "None" whatever was set, so Terraform
        # would plan the setting again after every deploy (drift, property 6) and nothing would show it.
        raise ConfigError(
            f"invoke.yaml: `{key_path(lookup('snap_start')[1])}`: the emulator does not keep SnapStart "
            f"(it reports it off whatever is set), so environment {name!r} cannot turn it on",
            hint="set snap_start on the environments that deploy to AWS only",
        )
    provisioned_concurrency = value("provisioned_concurrency")
    if provisioned_concurrency and emulator is not None:
        # moto answers PutProvisionedConcurrencyConfig with 404 "Not yet implemented": refused here,
        # before anything is built, rather than as a failed attach.
        raise ConfigError(
            f"invoke.yaml: `{key_path(lookup('provisioned_concurrency')[1])}`: the emulator has no provisioned "
            f"concurrency API, so environment {name!r} cannot ask for {provisioned_concurrency}",
            hint="set provisioned_concurrency on the environments that deploy to AWS only",
        )

    region = value("region")
    if not region:
        raise ConfigError(f"`{key_path(('environments', name, 'region'))}`: missing key")
    return EnvConfig(
        name=name,
        region=region,
        extra_regions=dict(value("extra_regions")),
        # An empty profile (e.g. INVOKE_DEPLOY_ENVIRONMENTS_STAGING_PROFILE="" under OIDC in CI)
        # means boto3's default credential chain.
        profile=value("profile") or None,
        account_id=value("account_id"),
        endpoint_url=endpoint_url,
        emulator=emulator,
        tfvars=f"envs/{name}.tfvars" if tfvars is None else tfvars,
        runtime=runtime,
        architecture=architecture,
        builder=builder,
        bytecode=value("bytecode"),
        layer=LayerOptions(**section("layer", Layer)),
        verify=VerifySettings(
            remote=value("verify", "remote"),
            smoke=smoke,
            trusted_layers=tuple(value("verify", "trusted_layers")),
            isolation=value("verify", "isolation"),
            sandbox_env={scope: dict(variables) for scope, variables in (sandbox_env or {}).items()},
        ),
        share=ShareSettings(**section("share", Share)),
        remote_cache=RemoteCacheSettings(
            **{**section("remote_cache", RemoteCache), "publisher": _cache_publisher(lookup)}
        ),
        state=state,
        deploy_lock=DeployLockSettings(**section("deploy_lock", DeployLock)),
        max_workers=value("max_workers"),
        snap_start=snap_start,
        provisioned_concurrency=provisioned_concurrency,
        paths=paths or Paths(),
    )

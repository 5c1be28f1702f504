"""Everything a run needs, checked before its first write, and every problem reported at once.

A first contact used to go: build the layer, plan, apply 28 resources, and only then stop
because ``bwrap`` was missing. Now each writing command (and ``inv doctor``) starts here: the
Terraform binary and version, the provider (the mirror, or the registry), the interpreter the
runtime needs for bytecode and verify, the sandbox's isolation, the builder, the emulator for an
environment that has one and, for an AWS environment, whose credentials these are (one STS
``GetCallerIdentity``; ``account_id`` in invoke.yaml pins the account, so a staging deploy can
not land in production's account). Each check only reads: no process is started, no file or AWS
object written, so a failed preflight leaves everything as it was.

The checks are plain functions returning :class:`Check` values; :func:`run` picks those a
command needs (:data:`NEEDS`) and :class:`Preflight` turns failures into one
:class:`~deploy.errors.PreflightError` listing each problem with its fix.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import platform
import re
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import signals
from deploy.config import EnvConfig
from deploy.errors import DeployError, PreflightError
from deploy.lambda_facts import deprecation_warning

__all__ = ["Check", "Mark", "Preflight", "PreflightError", "run"]


class Mark(enum.Enum):
    """How a check ended: a ✓ only for a check that ran and passed."""

    PASSED = "✓"
    FAILED = "✗"
    #: ran, passed, but the run will be weaker than usual (e.g. no bubblewrap on the emulator)
    NOTE = "!"
    #: not needed by this command or environment, or could not be checked from here
    SKIPPED = "–"


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    mark: Mark
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.mark is Mark.FAILED


@dataclass(frozen=True, kw_only=True)
class Preflight:
    env: str
    command: str
    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def ok(self) -> bool:
        return not self.failures

    def notes(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.mark is Mark.NOTE)

    def error(self) -> PreflightError:
        lines = [f"{len(self.failures)} prerequisite(s) of `inv {self.command} --env {self.env}` missing:"]
        for check in self.failures:
            lines.append(f"  ✗ {check.name}: {check.detail}")
            if check.fix:
                lines.append(f"      fix: {check.fix}")
        lines.append("nothing was written (no AWS write call, no Terraform run)")
        return PreflightError("\n".join(lines))

    def raise_for_failures(self) -> None:
        if not self.ok:
            raise self.error()

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "command": self.command,
            "ok": self.ok,
            "checks": [
                {"name": c.name, "status": c.mark.name.lower(), "detail": c.detail, "fix": c.fix} for c in self.checks
            ],
        }


# ---------------------------------------------------------------------------- what each command needs

TERRAFORM = "terraform"
PROVIDER = "aws provider"
RUNTIME_PYTHON = "runtime python"
SANDBOX = "sandbox"
BUILDER = "builder"
EMULATOR = "emulator"
CREDENTIALS = "credentials"
SECRETS = "secrets"
ALARMS = "rollout alarms"

ALL = (TERRAFORM, PROVIDER, RUNTIME_PYTHON, SANDBOX, BUILDER, EMULATOR, CREDENTIALS, SECRETS, ALARMS)
_AWS = (EMULATOR, CREDENTIALS)  # an environment has exactly one of the two
_BUILD = (RUNTIME_PYTHON, BUILDER)

#: The checks each command runs. Reading Terraform's outputs needs Terraform; building needs the
#: runtime's interpreter (bytecode) and the builder; running handlers needs the sandbox.
NEEDS: Mapping[str, tuple[str, ...]] = {
    "doctor": ALL,
    "deploy": ALL,
    "infra.apply": (TERRAFORM, PROVIDER, *_AWS),
    "publish-layer": (TERRAFORM, PROVIDER, *_BUILD, *_AWS),
    "attach": (TERRAFORM, PROVIDER, *_BUILD, *_AWS),
    "rollback": (TERRAFORM, PROVIDER, *_AWS),
    "prune-layers": (TERRAFORM, PROVIDER, *_AWS),
    "unlock": _AWS,
}


# ---------------------------------------------------------------------------- the checks


def check_terraform(find: Callable[[], Path] | None = None) -> Check:
    from deploy.terraform import MIN_VERSION, find_terraform

    try:
        binary = (find or find_terraform)()
    except DeployError as exc:
        return Check(
            name=TERRAFORM,
            mark=Mark.FAILED,
            detail=exc.message,
            fix=exc.hint or f"install Terraform >= {MIN_VERSION[0]}.{MIN_VERSION[1]}",
        )
    return Check(name=TERRAFORM, mark=Mark.PASSED, detail=f"{binary} (>= {MIN_VERSION[0]}.{MIN_VERSION[1]})")


_LOCKED_PROVIDER = re.compile(
    r'provider\s+"registry\.terraform\.io/hashicorp/aws"\s*\{[^}]*?version\s*=\s*"(?P<version>[^"]+)"', re.DOTALL
)


def locked_provider_version(workdir: Path) -> str | None:
    """The aws provider version ``.terraform.lock.hcl`` pins (None: no lock file yet)."""
    lock = workdir / ".terraform.lock.hcl"
    if not lock.is_file():
        return None
    match = _LOCKED_PROVIDER.search(lock.read_text())
    return match["version"] if match else None


def terraform_platform(machine: str | None = None) -> str:
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        (machine or platform.machine()).lower(), (machine or platform.machine()).lower()
    )
    return f"{platform.system().lower()}_{arch}"


def check_provider(env: EnvConfig, environ: Mapping[str, str], *, machine: str | None = None) -> Check:
    """The mirror (when there is one) must hold the provider version the lock file pins, for this
    platform: ``terraform init -plugin-dir`` otherwise fails after the state bucket was created."""
    from deploy.terraform import MIRROR_ENV_VAR, resolve_plugin_mirror

    version = locked_provider_version(env.paths.terraform)
    wanted = f"hashicorp/aws {version}" if version else "hashicorp/aws (no .terraform.lock.hcl: any version)"
    mirror = resolve_plugin_mirror(environ)
    if mirror is None:
        return Check(
            name=PROVIDER,
            mark=Mark.SKIPPED,
            detail=f"{wanted} from registry.terraform.io at `terraform init` (not checked from here)",
        )
    plat = terraform_platform(machine)
    base = mirror / "registry.terraform.io" / "hashicorp" / "aws"
    versions = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if version is None:
        found = bool(versions)
    else:
        found = (base / version / plat).is_dir() or (base / f"terraform-provider-aws_{version}_{plat}.zip").is_file()
    if found:
        return Check(name=PROVIDER, mark=Mark.PASSED, detail=f"{wanted} for {plat} in the mirror {mirror}")
    have = f"it has {', '.join(versions)}" if versions else "it has no hashicorp/aws provider"
    return Check(
        name=PROVIDER,
        mark=Mark.FAILED,
        detail=f"the provider mirror {mirror} lacks {wanted} for {plat} ({have})",
        fix=f"add that version to the mirror (`terraform providers mirror {mirror}` on a machine online), or unset "
        f"{MIRROR_ENV_VAR} / remove the mirror to use the registry",
    )


def check_runtime_python(env: EnvConfig, environ: Mapping[str, str]) -> Check:
    """The runtime's own minor version: bytecode is per minor version, and verify runs the handlers
    with it. A ``python3.12`` on PATH that answers 3.11 (a broken link, a shim) is named."""
    from deploy import runtime_python

    wanted = env.python_version
    found = runtime_python.find(wanted, env=environ)
    if found is not None:
        detail = f"python{wanted}: {found.path} ({found.version})"
        deprecated = deprecation_warning(env.runtime)  # a passed check with a caveat, said once per run
        if deprecated:
            return Check(name=RUNTIME_PYTHON, mark=Mark.NOTE, detail=f"{detail}; {deprecated}")
        return Check(name=RUNTIME_PYTHON, mark=Mark.PASSED, detail=detail)
    detail = f"no Python {wanted} for runtime {env.runtime}; {runtime_python.where_looked(wanted, environ)}"
    on_path = shutil.which(f"python{wanted}", path=environ.get("PATH", ""))
    if on_path:
        got = runtime_python.probe(Path(on_path), environ)
        detail += f"; python{wanted} on PATH ({on_path}) " + (
            f"is Python {got.version}" if got is not None else "does not run"
        )
    return Check(
        name=RUNTIME_PYTHON,
        mark=Mark.FAILED,
        detail=detail,
        fix=f"install Python {wanted} (`pyenv install {wanted}` and list it in .python-version, or your "
        f"distribution's python{wanted} package)",
    )


def check_sandbox(env: EnvConfig, decide: Callable[..., Any] | None = None) -> Check:
    """The verify sandbox's isolation, decided exactly as the run decides it (``deploy.verify.jail``)."""
    if decide is None:
        from deploy.verify.jail import isolation_for

        decision = isolation_for(env)  # the call the sandbox makes: the two never disagree
    else:
        decision = decide(setting=env.verify.isolation, emulator=env.emulator is not None)
    if not decision.ok:
        return Check(name=SANDBOX, mark=Mark.FAILED, detail=decision.detail, fix=decision.fix)
    mark = Mark.PASSED if decision.mode == "bwrap" else Mark.NOTE
    return Check(name=SANDBOX, mark=mark, detail=decision.detail)


def check_builder(env: EnvConfig, *, docker_ping: Callable[[], None] | None = None) -> Check:
    if env.builder == "docker":
        if importlib.util.find_spec("docker") is None:
            return Check(
                name=BUILDER,
                mark=Mark.FAILED,
                detail="builder docker needs the docker SDK, which is not installed",
                fix="pip install -e '.[docker]'",
            )
        try:
            if docker_ping is None:
                import docker

                docker.from_env(timeout=5).ping()
            else:
                docker_ping()
        except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds; each means "no engine here"
            return Check(
                name=BUILDER,
                mark=Mark.FAILED,
                detail=f"builder docker: no Docker engine answers ({str(exc).splitlines()[0][:160]})",
                fix="start Docker (or set DOCKER_HOST), or choose `--builder uv`",
            )
        return Check(name=BUILDER, mark=Mark.PASSED, detail="docker: the engine answers")
    if env.builder == "uv":
        try:
            from uv import find_uv_bin

            return Check(name=BUILDER, mark=Mark.PASSED, detail=f"uv: {find_uv_bin()}")
        except (ImportError, FileNotFoundError) as exc:
            return Check(
                name=BUILDER,
                mark=Mark.FAILED,
                detail=f"builder uv: the pinned uv is not installed ({exc})",
                fix="pip install -e . (uv is one of the project's dependencies)",
            )
    return Check(name=BUILDER, mark=Mark.PASSED, detail=f"{env.builder}: the project's own pip")


def check_emulator(env: EnvConfig) -> Check:
    """moto (the ``local`` extra) is installed, and the port is ours or free: a port another program
    holds is named here, before Terraform or the build ran."""
    from deploy import emulator

    assert env.emulator is not None
    settings = env.emulator
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        return Check(
            name=EMULATOR,
            mark=Mark.FAILED,
            detail="the local emulator needs moto[server], which is not installed",
            fix="pip install -e '.[local]'",
        )
    try:
        found = emulator.inspect(settings, env.paths.local_state)
    except DeployError as exc:
        return Check(name=EMULATOR, mark=Mark.FAILED, detail=exc.message, fix=exc.hint)
    if found.state == "running":
        return Check(name=EMULATOR, mark=Mark.PASSED, detail=f"moto server {found.describe(settings.url)}")
    if found.state == "starting":
        return Check(
            name=EMULATOR,
            mark=Mark.FAILED,
            detail=found.describe(settings.url),
            fix="`inv local.down --env local`, then rerun",
        )
    if emulator.port_open(settings.host, settings.port):
        what = "another moto server (not started by this checkout)" if emulator.is_moto(settings.url) else "a program"
        holder = emulator.port_holder(settings.port)
        return Check(
            name=EMULATOR,
            mark=Mark.FAILED,
            detail=f"port {settings.port} on {settings.host} is held by {what}" + (f": {holder}" if holder else ""),
            fix=f"stop it, or choose a free port: deploy.environments.{env.name}.emulator.port in invoke.yaml "
            f"(or INVOKE_DEPLOY_ENVIRONMENTS_{env.name.upper()}_EMULATOR_PORT)",
        )
    return Check(
        name=EMULATOR, mark=Mark.PASSED, detail=f"moto installed; port {settings.port} free (the run starts the server)"
    )


_SSO_ERRORS = ("SSOTokenLoadError", "UnauthorizedSSOTokenError", "TokenRetrievalError", "SSOError")


def check_credentials(env: EnvConfig, *, sts: Any = None) -> Check:
    """One STS ``GetCallerIdentity`` (a read): whose credentials, and the account ``account_id`` pins."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    profile = env.profile or "(default credential chain)"
    login = f"aws sso login --profile {env.profile}" if env.profile else "aws sso login"
    try:
        if sts is None:
            from deploy.aws.session import CLIENT_CONFIG, session_for

            sts = session_for(env).client("sts", config=CLIENT_CONFIG)
        identity = sts.get_caller_identity()
    except ProfileNotFound:
        return Check(
            name=CREDENTIALS,
            mark=Mark.FAILED,
            detail=f"AWS profile {env.profile!r} does not exist (deploy.environments.{env.name}.profile)",
            fix=f"`aws configure sso --profile {env.profile}` (or `aws configure --profile {env.profile}`), or set "
            f"the right profile in invoke.yaml",
        )
    except NoCredentialsError:
        return Check(
            name=CREDENTIALS,
            mark=Mark.FAILED,
            detail=f"no AWS credentials found for {profile}",
            fix=f"`aws configure --profile {env.profile}`"
            if env.profile
            else "set AWS_PROFILE or configure credentials",
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        expired = code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired")
        return Check(
            name=CREDENTIALS,
            mark=Mark.FAILED,
            detail=f"STS refused the credentials of {profile}: {code or exc}",
            fix=login if expired else "check the profile's keys or role",
        )
    except BotoCoreError as exc:
        sso = type(exc).__name__ in _SSO_ERRORS or "sso" in str(exc).lower()
        return Check(
            name=CREDENTIALS,
            mark=Mark.FAILED,
            detail=f"credentials of {profile}: {str(exc).splitlines()[0][:200]}",
            fix=login if sso else "check the profile in ~/.aws/config",
        )
    account, arn = str(identity.get("Account", "")), str(identity.get("Arn", ""))
    if env.account_id and account != env.account_id:
        return Check(
            name=CREDENTIALS,
            mark=Mark.FAILED,
            detail=f"{profile} is {arn} in account {account}, but invoke.yaml says {env.name} is account "
            f"{env.account_id}: refusing to read or write another account",
            fix=f"use the profile of account {env.account_id} (deploy.environments.{env.name}.profile), or correct "
            f"deploy.environments.{env.name}.account_id",
        )
    pinned = " (matches account_id)" if env.account_id else ""
    return Check(name=CREDENTIALS, mark=Mark.PASSED, detail=f"{profile}: {arn}, account {account}{pinned}")


def check_secrets(env: EnvConfig, *, targets: Any = None) -> Check:
    """Every secret a deployed function names (``*_SECRET_ARN``) exists: a handler would otherwise fail on
    its first request, after the deploy moved traffic to it. Reads the targets from the state (one GET)
    and one DescribeSecret per secret; an environment not applied yet has nothing to check."""
    from deploy.aws.secrets import missing_secrets
    from deploy.errors import TerraformError
    from deploy.terraform import load_targets

    if targets is None:
        try:
            targets = load_targets(env, read_only=True)
        except (TerraformError, DeployError):
            return Check(name=SECRETS, mark=Mark.SKIPPED, detail="no Terraform state to read yet: nothing deployed")
    missing = missing_secrets(env, targets)
    if missing:
        return Check(
            name=SECRETS,
            mark=Mark.FAILED,
            detail="; ".join(missing),
            fix="create or restore the secret and put its value (`aws secretsmanager put-secret-value --secret-id "
            "ARN --secret-string …`), or `inv infra.apply` to recreate it",
        )
    return Check(name=SECRETS, mark=Mark.PASSED, detail="every secret the functions reference exists")


def check_alarms(env: EnvConfig, *, cloudwatch: Any = None) -> Check:
    """Every CloudWatch alarm the rollout watches exists (one DescribeAlarms call for all names): an
    alarm that does not exist is never in ALARM, so a typo would watch nothing and let a bad version
    take all the traffic."""
    from deploy.aws.rollout import firing

    alarms = env.rollout.alarms
    if not env.rollout.gradual or not alarms:
        return Check(name=ALARMS, mark=Mark.SKIPPED, detail=f"{env.name} rolls out {env.rollout.strategy}, no alarms")
    if cloudwatch is None:
        from deploy.aws.calls import client

        cloudwatch = client(env, "cloudwatch")
    _alarm, missing = firing(cloudwatch, alarms)
    if missing:
        return Check(
            name=ALARMS,
            mark=Mark.FAILED,
            detail=f"no such CloudWatch alarm in {env.region}: {', '.join(missing)}",
            fix=f"create it, or correct deploy.environments.{env.name}.rollout.alarms in invoke.yaml",
        )
    return Check(name=ALARMS, mark=Mark.PASSED, detail=f"the rollout watches {', '.join(alarms)}")


# ---------------------------------------------------------------------------- running them


def _skipped(name: str, why: str) -> Check:
    return Check(name=name, mark=Mark.SKIPPED, detail=why)


def run(
    env: EnvConfig,
    command: str,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Callable[[], Check]] | None = None,
    skip: Sequence[str] = (),
) -> Preflight:
    """Every check ``command`` needs, all of them even after a failure (one report, every problem).

    ``overrides`` replaces a check by name (tests inject faults; nothing is monkeypatched);
    ``skip`` names checks this run does not need (e.g. the sandbox on a dry run)."""
    environ = os.environ if environ is None else environ
    needed = NEEDS.get(command, ALL)
    checks: dict[str, Callable[[], Check]] = {
        TERRAFORM: check_terraform,
        PROVIDER: lambda: check_provider(env, environ),
        RUNTIME_PYTHON: lambda: check_runtime_python(env, environ),
        SANDBOX: lambda: check_sandbox(env),
        BUILDER: lambda: check_builder(env),
        EMULATOR: lambda: check_emulator(env),
        CREDENTIALS: lambda: check_credentials(env),
        SECRETS: lambda: check_secrets(env),
        ALARMS: lambda: check_alarms(env),
        **(overrides or {}),
    }
    found: dict[str, Check] = {}
    for name in ALL:
        if name not in needed or name in skip:
            found[name] = _skipped(name, f"not needed by `inv {command}`")
        elif name == EMULATOR and env.emulator is None:
            found[name] = _skipped(name, f"{env.name} is an AWS environment")
        elif name == CREDENTIALS and env.emulator is not None:
            found[name] = _skipped(name, "the emulator takes fixed dummy credentials")
    # The independent checks side by side: most of their time is another process answering (terraform
    # version, the runtime interpreter, the jail's probe: 0.25 s one after another on a code-only deploy).
    independent = [name for name in ALL if name not in found and name not in _AFTER_THE_OTHERS]
    found.update(_side_by_side({name: checks[name] for name in independent}))
    for name in _AFTER_THE_OTHERS:
        if name in found:
            continue
        if env.emulator is not None or any(c.failed for c in found.values()):
            # The emulator is not started by a preflight (nothing to read then); and without working
            # credentials or Terraform there is nothing to ask.
            why = f"the emulator's {name} are checked by the run" if env.emulator is not None else "see above"
            found[name] = _skipped(name, why)
        else:
            found[name] = checks[name]()
    return Preflight(env=env.name, command=command, checks=tuple(found[name] for name in ALL))


#: Checks that ask AWS, and only once every other check passed (they need credentials and Terraform).
_AFTER_THE_OTHERS = (SECRETS, ALARMS)


def _side_by_side(checks: Mapping[str, Callable[[], Check]]) -> dict[str, Check]:
    """Each check in its own daemon thread; a check that raises raises here, in ``checks``' order.

    Daemon threads joined one by one, not a thread pool: a Ctrl-C during the checks interrupts the
    join, and the process exits without waiting for a check still blocked (an STS call on a dead
    network retries for tens of seconds); a pool would wait for it, and again at exit.
    The join is :func:`deploy.signals.join`: a Ctrl-C the kernel handed to a check's thread still
    interrupts it."""
    results: dict[str, Check | BaseException] = {}

    def run(name: str, check: Callable[[], Check]) -> None:
        try:
            results[name] = check()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=(name, check), name=f"preflight-{name}", daemon=True)
        for name, check in checks.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        signals.join(thread)
    out: dict[str, Check] = {}
    for name in checks:
        result = results[name]
        if isinstance(result, BaseException):
            raise result
        out[name] = result
    return out

"""Run Terraform for one environment: find the binary, ``init`` (mirror aware), select the
env's workspace, run ``apply``/``plan``/``output`` and read the ``deploy_targets`` output.

Each environment gets its own workspace (its own state) and its own ``TF_DATA_DIR``
(``infra/terraform/.terraform-<env>``), so two environments never share a selected
workspace or provider cache, and the root module refuses to plan when the workspace and
``var.environment`` disagree.

Offline first: when a provider mirror exists (``/opt/tf-plugins``, or
``TF_PLUGIN_MIRROR``) ``init`` installs from it and never reaches the registry.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from deploy.aws.state_bucket import ensure_state_bucket, state_outputs
from deploy.config import EMULATOR_STATE, EnvConfig, Targets
from deploy.errors import ConfigError, TerraformError
from deploy.terraform import events as tf_events
from deploy.terraform.fingerprint import DIGEST_VARIABLE, config_digest
from deploy.terraform.targets import targets_from_outputs

MIN_VERSION: tuple[int, int] = (1, 10)  # the S3 backend's use_lockfile
DEFAULT_PLUGIN_MIRROR = Path("/opt/tf-plugins")
MIRROR_ENV_VAR = "TF_PLUGIN_MIRROR"
STDERR_TAIL = 20

#: Phrases Terraform prints when it cannot reach the provider registry.
_REGISTRY_UNREACHABLE = (
    "could not connect to registry",
    "failed to query available provider packages",
    "failed to retrieve authentication checksums",
    "dial tcp",
    "no such host",
    "i/o timeout",
    "connection refused",
)

Echo = Callable[[str], None]


#: The AWS SDKs' (and so the provider's) endpoint for every service: how the emulator's URL reaches it.
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


@dataclass(frozen=True, kw_only=True)
class Terraform:
    """How to run Terraform for one environment; built by ``terraform_for``."""

    binary: Path
    workdir: Path
    env: str
    var_file: Path
    variables: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    plugin_mirror: Path | None = None
    #: ``-backend-config`` values for the S3 backend (see ``backend_config``); {} = none configured.
    backend: Mapping[str, Any] = field(default_factory=dict)
    #: Run before ``init`` (creates the state bucket when it is missing).
    prepare: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def emulated(self) -> bool:
        """Whether this environment is the local emulator (``terraform_for`` gave it the emulator's URL)."""
        return ENDPOINT_VARIABLE in self.environ

    def process_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's environment: ours, plus per-env data dir and credentials."""
        env = dict(os.environ if base is None else base)
        if self.emulated:
            # An emulated environment: no per-service endpoint left in the caller's shell (AWS_ENDPOINT_URL_S3,
            # …) may send one of the provider's calls elsewhere; ``environ`` also says not to ignore ours.
            for name in [n for n in env if n.startswith(f"{ENDPOINT_VARIABLE}_")]:
                del env[name]
        env.update(self.environ)
        # The workspace is the environment's, chosen by the data dir's selection (``select_workspace``),
        # never by a TF_WORKSPACE left in the caller's shell.
        env.pop("TF_WORKSPACE", None)
        env["TF_DATA_DIR"] = str(self.data_dir)
        env["TF_IN_AUTOMATION"] = "1"
        env["TF_INPUT"] = "0"
        return env

    def var_args(self) -> list[str]:
        args = ["-var-file", str(self.var_file)]
        for name, value in sorted(self.variables.items()):
            args += ["-var", f"{name}={value}"]
        return args


# ---------------------------------------------------------------------------
# Pure helpers (unit-tested without Terraform)


def parse_version(text: str) -> tuple[int, int, int]:
    """``terraform version -json`` → (major, minor, patch)."""
    try:
        data = json.loads(text)
        raw = data["terraform_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TerraformError(f"cannot read the output of `terraform version -json`: {text[:200]!r}") from exc
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", str(raw))
    if not match:
        raise TerraformError(f"unrecognised Terraform version {raw!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def resolve_plugin_mirror(environ: Mapping[str, str], default: Path = DEFAULT_PLUGIN_MIRROR) -> Path | None:
    """The provider mirror to install from, or None for a normal (registry) init.

    ``TF_PLUGIN_MIRROR`` wins: a path selects that mirror (it must exist), an empty
    value turns the mirror off. Otherwise the default mirror is used when present.
    """
    if MIRROR_ENV_VAR in environ:
        value = environ[MIRROR_ENV_VAR].strip()
        if not value:
            return None
        mirror = Path(value)
        if not mirror.is_dir():
            raise TerraformError(
                f"{MIRROR_ENV_VAR}={value} is not a directory",
                hint="point it at a provider mirror (`terraform providers mirror DIR`) or leave it empty",
            )
        return mirror
    return default if default.is_dir() else None


def init_args(plugin_mirror: Path | None) -> list[str]:
    """Arguments of ``terraform init``; with a mirror, the registry is never contacted."""
    args = ["init", "-input=false", "-no-color"]
    if plugin_mirror is not None:
        args += ["-plugin-dir", str(plugin_mirror)]
    return args


def backend_config(env: EnvConfig) -> dict[str, Any]:
    """The S3 backend settings of ``env`` (partial configuration: versions.tf declares ``backend "s3" {}``)."""
    state = env.state or (EMULATOR_STATE if env.emulator is not None else None)
    if state is None:
        raise ConfigError(
            f"invoke.yaml: missing key deploy.environments.{env.name}.state (the Terraform state bucket)",
            hint="add state: {bucket: <name>, key: <path>} so every machine and CI run shares one state",
        )
    config: dict[str, Any] = {
        "bucket": state.bucket,
        "key": state.key,
        "region": state.region or env.region,
        "encrypt": True,
        "use_lockfile": state.lock,
    }
    if env.endpoint_url:
        # The emulator: path-style S3 on one URL, dummy credentials, no AWS account lookups.
        config.update(
            endpoints={"s3": env.endpoint_url},
            use_path_style=True,
            skip_credentials_validation=True,
            skip_requesting_account_id=True,
            skip_metadata_api_check=True,
            skip_region_validation=True,
            access_key="test",
            secret_key="test",  # noqa: S106 - the emulator's dummy credentials
        )
    elif env.profile:
        config["profile"] = env.profile
    return config


def backend_hcl(config: Mapping[str, Any]) -> str:
    """Render backend settings as an HCL file for ``-backend-config`` (values are JSON-compatible)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, Mapping):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in sorted(v.items())) + " }"
        return json.dumps(str(v))

    return "".join(f"{k} = {value(v)}\n" for k, v in sorted(config.items()))


def registry_unreachable(stderr: str) -> bool:
    lowered = stderr.lower()
    return "registry.terraform.io" in lowered and any(phrase in lowered for phrase in _REGISTRY_UNREACHABLE)


def tail(text: str, lines: int = STDERR_TAIL) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------------------
# Running Terraform


@functools.lru_cache(maxsize=8)
def _version_of(binary: str, inode: int, size: int, mtime_ns: int) -> tuple[int, int, int]:
    """``terraform version -json`` of ``binary``, once per process for the same file (inode, size and
    mtime in the key: a binary replaced meanwhile is asked again). A deploy looked for Terraform two or
    three times (preflight, each runner, the function map), and each answer is a process (0.13 s)."""
    try:
        proc = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TerraformError(f"cannot run {binary} version: {exc}") from exc
    if proc.returncode != 0:
        raise TerraformError(f"`{binary} version -json` failed (exit {proc.returncode}):\n{tail(proc.stderr)}")
    return parse_version(proc.stdout)


def find_terraform(
    min_version: tuple[int, int] = MIN_VERSION,
    *,
    binary: str | Path | None = None,
    path: str | None = None,
) -> Path:
    """Locate the terraform binary (on ``path``/PATH unless given) and check its version."""
    if binary is not None:
        candidate = Path(binary)
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            raise TerraformError(
                f"terraform not found at {candidate}", hint=f"install Terraform >= {MIN_VERSION[0]}.{MIN_VERSION[1]}"
            )
    else:
        found = shutil.which("terraform", path=path)
        if found is None:
            raise TerraformError(
                "terraform not found on PATH",
                hint=f"install Terraform >= {min_version[0]}.{min_version[1]} (https://developer.hashicorp.com/terraform/install)",
            )
        candidate = Path(found)
    try:
        identity = candidate.stat()
    except OSError as exc:
        raise TerraformError(f"cannot run {candidate} version: {exc}") from exc
    version = _version_of(str(candidate), identity.st_ino, identity.st_size, identity.st_mtime_ns)
    if version[:2] < min_version:
        found_text = ".".join(map(str, version))
        raise TerraformError(
            f"terraform {found_text} at {candidate} is too old; need >= {min_version[0]}.{min_version[1]}",
            hint="infra/terraform needs >= 1.10 (the S3 backend's use_lockfile, workspace select -or-create)",
        )
    return candidate


def terraform_for(
    env: EnvConfig,
    *,
    binary: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Terraform:
    """The Terraform runner of one environment; fails early when its tfvars file is missing."""
    environ = os.environ if environ is None else environ
    workdir = env.paths.terraform
    var_file = workdir / env.tfvars
    if not var_file.is_file():
        raise ConfigError(
            f"tfvars file {var_file} for env {env.name} does not exist",
            hint=f"create it or fix deploy.environments.{env.name}.tfvars in invoke.yaml (relative to {workdir})",
        )
    variables: dict[str, str] = {}
    child_env: dict[str, str] = {"AWS_DEFAULT_REGION": env.region, "AWS_REGION": env.region}
    backend = backend_config(env)
    # The CI deploy role (modules/github-oidc-deploy-role) is granted exactly this state object.
    variables["state_bucket"] = str(backend["bucket"])
    variables["state_key"] = str(backend["key"])
    # The CI roles' IAM conditions name the layers verify trusts and the accounts the layer is
    # shared with: taken from invoke.yaml, so the two never disagree. JSON lists are HCL lists.
    # Passed even when empty: emptying a list in invoke.yaml must not leave a tfvars value in force.
    trusted = sorted({re.sub(r":\d+$", "", arn) for arn in env.verify.trusted_layers})
    variables["trusted_layer_arns"] = json.dumps(trusted)
    variables["share_account_ids"] = json.dumps(list(env.share.accounts))
    if env.share.organization_id:
        variables["share_organization_id"] = env.share.organization_id
    # The shared remote cache the CI deploy role may read (invoke.yaml remote_cache.bucket).
    variables["layer_cache_bucket"] = env.remote_cache.bucket or ""
    variables["layer_cache_publisher_arn"] = env.remote_cache.publisher or ""
    # invoke.yaml snap_start (checked against the runtime when the settings load); always passed,
    # so turning it off in invoke.yaml turns it off in Lambda.
    variables["snap_start"] = "true" if env.snap_start else "false"
    if env.endpoint_url:
        # The emulator accepts any credentials; fixed dummies keep a developer's real
        # keys out of every request made to it.
        variables["aws_endpoint"] = env.endpoint_url
        child_env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        # Every service's endpoint, for the provider (providers.tf has no `endpoints` block: see there).
        child_env[ENDPOINT_VARIABLE] = env.endpoint_url
        # The variable beats a profile's `ignore_configured_endpoint_urls = true` in ~/.aws/config.
        child_env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "false"
    elif env.profile:
        child_env["AWS_PROFILE"] = env.profile
    # Recorded in the state (an output): a fresh runner or `inv status` compares it without planning.
    variables[DIGEST_VARIABLE] = config_digest(workdir, var_file, variables)
    return Terraform(
        binary=binary if binary is not None else find_terraform(),
        workdir=workdir,
        env=env.name,
        var_file=var_file,
        variables=variables,
        data_dir=workdir / f".terraform-{env.name}",
        environ=child_env,
        plugin_mirror=resolve_plugin_mirror(environ),
        backend=backend,
        prepare=lambda: ensure_state_bucket(env),
    )


Events = Callable[[Mapping[str, Any]], None]


def _run(
    tf: Terraform,
    args: Sequence[str],
    *,
    ok_codes: tuple[int, ...] = (0,),
    echo: Echo | None = None,
    log: Path | None = None,
    events: Events | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run terraform. Its merged output, line by line, goes to ``echo`` and the ``log`` file
    (appended) as text; ``-json`` events are also handed to ``events`` and shown as their own
    human text. A failure names the last lines and, with a log, the log's path."""
    cmd = [str(tf.binary), *args]
    what = f"terraform {args[0]} ({tf.env})"
    try:
        if echo is None and log is None and events is None:
            proc = subprocess.run(
                cmd, cwd=tf.workdir, env=tf.process_env(), capture_output=True, text=True, check=False
            )
        else:
            last: deque[str] = deque(maxlen=STDERR_TAIL)
            out: list[str] = []
            with contextlib.ExitStack() as stack:
                sink = None
                if log is not None:
                    log.parent.mkdir(parents=True, exist_ok=True)
                    sink = stack.enter_context(log.open("a", encoding="utf-8"))
                    sink.write(f"$ terraform {' '.join(args)}\n")
                child = stack.enter_context(
                    subprocess.Popen(
                        cmd,
                        cwd=tf.workdir,
                        env=tf.process_env(),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                        bufsize=1,
                    )
                )
                assert child.stdout is not None
                for raw_line in child.stdout:
                    event = tf_events.parse(raw_line.rstrip("\n"))
                    line = raw_line.rstrip("\n") if event is None else tf_events.text(event)
                    if event is not None and events is not None:
                        events(event)
                    if echo is not None:
                        echo(line)
                    if sink is not None:
                        sink.write(line + "\n")
                    out.append(line)
                    last.extend(line.splitlines() or [""])
            proc = subprocess.CompletedProcess(cmd, child.returncode, "\n".join(out), "\n".join(last))
    except OSError as exc:
        raise TerraformError(f"cannot run {what}: {exc}") from exc
    if proc.returncode not in ok_codes:
        where = f"\nfull log: {log}" if log is not None else ""
        err = TerraformError(
            f"{what} failed (exit {proc.returncode}); its last lines:\n{tail(proc.stderr or proc.stdout)}{where}"
        )
        err.output = f"{proc.stdout}\n{proc.stderr}"  # type: ignore[attr-defined]  # the whole text, for orphans()
        raise err
    return proc


def init(tf: Terraform, *, echo: Echo | None = None, log: Path | None = None) -> None:
    """``terraform init`` into the env's data dir, from the provider mirror when there is one."""
    if tf.prepare is not None:
        tf.prepare()
    backend_args: list[str] = []
    if tf.backend:
        tf.data_dir.mkdir(parents=True, exist_ok=True)
        hcl = tf.data_dir / "backend.hcl"
        hcl.write_text(backend_hcl(tf.backend))
        # -reconfigure: the settings are derived from invoke.yaml on every run (e.g. the
        # emulator's port), never migrated from whatever an older data dir recorded.
        backend_args = ["-reconfigure", f"-backend-config={hcl}"]
    try:
        _run(tf, [*init_args(tf.plugin_mirror), "-upgrade=false", *backend_args], echo=echo, log=log)
    except TerraformError as exc:
        if tf.plugin_mirror is None and registry_unreachable(str(exc)):
            raise TerraformError(
                "terraform init could not reach the provider registry (registry.terraform.io)",
                hint=f"set {MIRROR_ENV_VAR} to a provider mirror (e.g. {DEFAULT_PLUGIN_MIRROR}) or go online",
            ) from exc
        raise


def select_workspace(tf: Terraform, *, log: Path | None = None) -> None:
    """Select (creating on first use) the workspace named after the environment."""
    _run(tf, ["workspace", "select", "-no-color", "-or-create", tf.env], log=log)


#: Where Terraform records the selected workspace, inside the data dir (absent: ``default``).
WORKSPACE_FILE = "environment"


def _workspace_selected(tf: Terraform) -> bool:
    """Whether the env's data dir already has its workspace selected.

    Terraform keeps the selection in ``<data dir>/environment`` and every environment has its own
    data dir, so once selected it stays selected: selecting it again before each command cost a
    Terraform process (about 0.7 CPU-seconds, 1.5 s on 2 cores; 53 of them in one e2e run). A
    selected workspace whose state object is gone (a fresh emulator, an emptied bucket) needs no
    select either: the S3 backend creates the workspace on the next plan or apply, as
    ``select -or-create`` would have."""
    try:
        return (tf.data_dir / WORKSPACE_FILE).read_text(encoding="utf-8").strip() == tf.env
    except OSError:
        return False


def _initialised(tf: Terraform) -> bool:
    if tf.backend:
        hcl = tf.data_dir / "backend.hcl"
        if not hcl.is_file() or hcl.read_text() != backend_hcl(tf.backend):
            return False  # first run, or the backend moved (e.g. another emulator port)
    return (tf.data_dir / "modules" / "modules.json").is_file() and (tf.data_dir / "providers").is_dir()


class Output(TypedDict, total=False):
    """Where a command's output goes (see ``_run``): every command that runs Terraform passes these on as
    they are."""

    echo: Echo | None
    log: Path | None
    events: Events | None


class _RunOptions(Output, total=False):
    ok_codes: tuple[int, ...]


def _run_initialised(
    tf: Terraform, args: Sequence[str], **options: Unpack[_RunOptions]
) -> subprocess.CompletedProcess[str]:
    """Run a command that needs an initialised data dir and the env's workspace.

    A data dir from an older checkout (a module or provider added since) makes
    Terraform ask for `terraform init`: do that once and retry. ``init`` and the workspace
    switch write to the log only: they are housekeeping, not progress.
    """
    log = options.get("log")
    if not _initialised(tf):
        init(tf, log=log)
    elif tf.prepare is not None:
        tf.prepare()  # the state bucket may be gone even when the data dir is set up (a fresh emulator)
    try:
        if not _workspace_selected(tf):
            select_workspace(tf, log=log)
        return _run(tf, args, **options)
    except TerraformError as exc:
        if "terraform init" not in str(exc):
            raise
    init(tf, log=log)
    select_workspace(tf, log=log)
    return _run(tf, args, **options)


# A create whose response was lost (a dropped connection; the SDK then retries the POST)
# leaves the resource in AWS but not in state, and every later apply fails with
# "already exists". For the resources below the name is ours and unambiguous, so apply
# adopts it (terraform import) and applies again, once: a rerun converges.
_ALIAS_EXISTS = re.compile(
    r"Alias already exists: arn:aws[\w-]*:lambda:[\w-]+:\d+:function:(?P<function>[\w-]+):(?P<alias>[\w-]+)"
    r".*?\n\s*with (?P<address>[\w.\[\]\"-]+),",
    re.DOTALL,
)


# The same for a function (seen once against the emulator: the provider's second CreateFunction met
# its first one's function, and the provider retried that 409 until its create timeout, five minutes).
# Up to the next diagnostic only, so a name is never paired with another one's address.
_FUNCTION_EXISTS = re.compile(
    r"ResourceConflictException: Function already exist: (?P<function>[\w-]+)"
    r"(?:(?!\n(?:Error|Warning):).)*?\n\s*with (?P<address>[\w.\[\]\"-]+\.aws_lambda_function\.[\w.\[\]\"-]+),",
    re.DOTALL,
)


def orphans(error_text: str, *, functions: bool = False) -> list[tuple[str, str]]:
    """``(address, import id)`` of resources an apply failed to create because they already exist.

    An alias lives inside our own function, so its name is ours. A function's name is not, in an AWS
    account: one made by hand or by another stack must never be taken over. So functions are adopted
    only where asked (``functions``: the emulator, where the whole account is this project's)."""
    found = {m["address"]: f"{m['function']}/{m['alias']}" for m in _ALIAS_EXISTS.finditer(error_text)}
    if functions:
        found.update({m["address"]: m["function"] for m in _FUNCTION_EXISTS.finditer(error_text)})
    return sorted(found.items())


#: What Terraform says when a saved plan no longer matches the state (someone applied since).
_STALE_PLAN = "Saved plan is stale"


def apply(
    tf: Terraform,
    *,
    auto_approve: bool = True,
    plan_file: Path | None = None,
    **output: Unpack[Output],
) -> None:
    """Create or update the environment. With ``auto_approve`` Terraform speaks ``-json``:
    ``events`` gets each event (for a progress line), ``echo`` and ``log`` their text.

    ``plan_file``: apply exactly that saved plan (the one the caller showed and checked), without
    planning again; a plan the state moved past is refused by Terraform and reported as such."""
    args = ["apply", "-input=false", "-no-color", "-lock-timeout=60s", *tf.var_args()]
    if auto_approve:
        args += ["-auto-approve", "-json"]  # -json needs -auto-approve
    saved = ["apply", "-input=false", "-no-color", "-lock-timeout=60s", "-json", str(plan_file)]
    try:
        _run_initialised(tf, saved if plan_file is not None else args, **output)
    except TerraformError as exc:
        found = orphans(getattr(exc, "output", str(exc)), functions=tf.emulated)
        if plan_file is not None and _STALE_PLAN in getattr(exc, "output", str(exc)):
            raise TerraformError(
                f"terraform state for {tf.env} changed after the plan was made, so the plan was not applied",
                hint="another writer applied meanwhile (outside the deploy lock?); rerun to plan again",
            ) from None
        if not found:
            raise
        echo = output.get("echo")
        for address, import_id in found:
            note = f"adopting {address} ({import_id}): created by an earlier attempt, missing from state"
            if echo is not None:
                echo(note)
            import_args = ["import", "-input=false", "-no-color", "-lock-timeout=60s", *tf.var_args()]
            _run(tf, [*import_args, address, import_id], log=output.get("log"))
        _run_initialised(tf, args, **output)
    forget_targets(tf)


def plan(
    tf: Terraform,
    *,
    detailed_exitcode: bool = True,
    lock: bool = True,
    out: Path | None = None,
    **output: Unpack[Output],
) -> bool:
    """Plan the environment; True when Terraform wants to change something (drift).

    ``lock=False`` for a plan that only decides (deploy reads its plan again under the deploy lock):
    Terraform then writes no ``.tflock`` into the state bucket, so read-only credentials suffice.
    ``out``: save the plan there, so the apply runs exactly this plan (``apply(plan_file=...)``)."""
    locking = ["-lock-timeout=60s"] if lock else ["-lock=false"]
    args = ["plan", "-input=false", "-no-color", *locking, *tf.var_args()]
    if out is not None:
        args.append(f"-out={out}")
    if detailed_exitcode:
        # 0 = no changes, 2 = changes, 1 = error.
        cmd = [*args, "-detailed-exitcode", "-json"]
        proc = _run_initialised(tf, cmd, ok_codes=(0, 2), **output)
        return proc.returncode == 2
    proc = _run_initialised(tf, args, **output)
    return "No changes." not in proc.stdout


def show_plan_json(tf: Terraform, plan_file: Path) -> dict[str, Any]:
    """``terraform show -json PLAN``: the saved plan as data (resource changes, planned outputs)."""
    proc = _run(tf, ["show", "-json", "-no-color", str(plan_file)])
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise TerraformError(f"terraform show -json {plan_file.name} is not JSON: {proc.stdout[:200]!r}") from exc
    if not isinstance(data, dict):
        raise TerraformError(f"terraform show -json {plan_file.name} is not an object")
    return data


def output_json(tf: Terraform) -> dict[str, Any]:
    """``terraform output -json`` of the env's workspace ({} when never applied)."""
    proc = _run_initialised(tf, ["output", "-json", "-no-color"])
    text = proc.stdout.strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TerraformError(f"terraform output -json ({tf.env}) is not JSON: {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise TerraformError(f"terraform output -json ({tf.env}) is not an object")
    return data


_TARGETS_CACHE: dict[tuple[str, Path], Targets] = {}


def forget_targets(tf: Terraform | None = None) -> None:
    """Drop cached targets (all, or one env's) after an apply changed them."""
    if tf is None:
        _TARGETS_CACHE.clear()
    else:
        _TARGETS_CACHE.pop((tf.env, tf.workdir), None)


def load_targets(env: EnvConfig, *, tf: Terraform | None = None, read_only: bool = False) -> Targets:
    """The env's resource names from Terraform state, read once per process.

    ``read_only`` (the remote cache's lookup, made before anything is applied): the outputs are read
    from the state object with one GET, without running Terraform, so nothing (state bucket,
    workspace, data dir) is created; with no state to read, a TerraformError says so."""
    key = (env.name, env.paths.terraform)
    if key in _TARGETS_CACHE:
        return _TARGETS_CACHE[key]
    if read_only:  # the state object itself: no init (which copies the provider), nothing created
        recorded = state_outputs(env)
        if recorded is None:
            raise TerraformError(f"no Terraform state to read for {env.name} yet (nothing applied, or no access)")
        targets = targets_from_outputs(recorded, env.name)
        var_file = Path(env.tfvars).name
    else:
        runner = tf if tf is not None else terraform_for(env)
        targets = targets_from_outputs(output_json(runner), env.name)
        var_file = runner.var_file.name
    if targets.region != env.region:
        raise ConfigError(
            f"env {env.name}: invoke.yaml says region {env.region} but Terraform deployed to {targets.region}",
            hint=f"make deploy.environments.{env.name}.region and aws_region in {var_file} agree",
        )
    if not read_only:
        _TARGETS_CACHE[key] = targets  # what the state object says is not cached: Terraform's answer is
    return targets

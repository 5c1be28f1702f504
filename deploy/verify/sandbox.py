"""The sandbox: the runtime's own interpreter in a fresh process per function, with only the
extracted function zip (the task root) and layer zip(s) (``/opt``) on ``sys.path`` in Lambda's order.

``verify_local`` runs the artifacts just built; ``deploy.verify.deployed`` runs the deployed bytes
through the same jobs; ``deploy.coldstart`` times imports through it. :func:`open_session` and
:meth:`Session.run` are the one entry point: every process that runs code from an artifact starts
there, with the environment from :func:`_sandbox_env` and the isolation ``jail.isolation_for`` decided.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deploy import runtime_python
from deploy.artifact import Artifact
from deploy.config import VERIFY_TIMEOUT_S, EnvConfig, FunctionTarget, SmokeCase, Targets
from deploy.errors import BuildError, VerifyError
from deploy.verify.extracted import ExtractionCache, ZipSource
from deploy.verify.isolation import aws_environment, function_variables, sandbox_endpoint
from deploy.verify.jail import (
    BWRAP,
    SYSTEM_PATHS,
    IsolationDecision,
    Jail,
    account_files,
    announce,
    argv_prefix,
    fallback_argv,
    interpreter_paths,
    isolation_for,
    require_isolation,
)
from deploy.verify.native import ELF_MACHINES, check_architecture, elf_machine, host_architecture
from deploy.verify.relay import forwarder
from deploy.verify.results import FunctionVerify, SmokeResult, VerifyReport, _report
from deploy.verify.smoke import _skip_reason, check_expect, expectation_for, smoke_for

RUNNER = Path(__file__).resolve().parent / "sandbox_runner.py"
RELAY = RUNNER.parent / "relay.py"  # bound with the runner: the same folder
_ELF_MACHINES = ELF_MACHINES  # the name deploy.verify re-exports
DEFAULT_TIMEOUT_S = VERIFY_TIMEOUT_S  # the rollout settings check a step's hold against it


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's): one
    sandbox interpreter per core; more only thrash, since each import is CPU-bound."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS has no affinity call
        return max(1, os.cpu_count() or 1)


#: Sandboxes run in parallel up to this many by default (the functions are independent processes);
#: asked again for each run, as the affinity can change.
MAX_WORKERS = usable_cores()
#: What Lambda's python runtimes provide after the layers (/var/lang/.../site-packages, /var/runtime):
#: a function may rely on them without shipping them, so the sandbox lends the host's copies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def _python_version_of(path: Path, env: Mapping[str, str] | None = None) -> tuple[str, Path] | None:
    """(``X.Y``, the real executable) — a pyenv shim resolves to the interpreter behind it, which the
    sandbox must call directly: it runs with a scrubbed environment in which the shim cannot work."""
    found = runtime_python.probe(path, env)
    return (found.minor, found.path) if found is not None else None


def find_runtime_python(python_version: str, *, env: Mapping[str, str] = os.environ) -> Path:
    """The interpreter matching Lambda's runtime (``deploy.runtime_python``, shared with the bytecode compile)."""
    found = runtime_python.find(python_version, env=env)
    if found is not None:
        return found.path
    raise VerifyError(
        f"runtime python{python_version} needs a Python {python_version} interpreter to verify; "
        f"install it (e.g. `pyenv install {python_version}`) or put it on PATH",
        hint=runtime_python.where_looked(python_version, env),
    )


# ---------------------------------------------------------------------------
# Sandbox


@dataclass(frozen=True, kw_only=True)
class Tree:
    """One extracted function + layers combination, shared by the functions that deploy it."""

    task_root: Path  # /var/task
    opt: Path  # /opt


_Tree = Tree  # the name deploy.verify.deployed imports


def built_tree(
    held: contextlib.ExitStack[bool | None], cache: ExtractionCache, *, layer: Artifact, function: Artifact
) -> Tree:
    """The tree of this machine's built zips (checked by the caller), in use until ``held`` closes."""
    opt, task = cache.lambda_trees(
        held,
        layers=[ZipSource(sha256=layer.sha256, what=f"layer {layer.path.name}", path=lambda: layer.path)],
        code=ZipSource(sha256=function.sha256, what=f"function {function.path.name}", path=lambda: function.path),
    )
    return Tree(task_root=task.path, opt=opt.path)


@dataclass(frozen=True, kw_only=True)
class _Job:
    target: FunctionTarget
    tree: Tree
    cases: tuple[SmokeCase, ...]
    environment: Mapping[str, str]  # the function's configured variables
    memory_mb: int = 128
    function_timeout_s: float | None = None  # the function's configured timeout (deployed only)
    function_arn: str | None = None
    code_sha256: str | None = None
    layers: tuple[str, ...] = ()
    #: The CodeSha256 (base64) of each layer extracted into /opt, in order.
    layer_code_sha256: tuple[str, ...] = ()


def _runtime_dir(root: Path) -> Path:
    """Symlink the host's copies of what Lambda's runtime provides (pure Python) into one folder."""
    import importlib.util

    out = root / "runtime"
    out.mkdir(exist_ok=True)
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        source = Path(spec.origin)
        source = source.parent if spec.submodule_search_locations else source
        link = out / source.name
        if not link.exists():
            link.symlink_to(source)
    return out


def _sys_path(tree: Tree, python_version: str, runtime: Path) -> list[str]:
    # Lambda: /var/task, /opt/python/lib/pythonX.Y/site-packages, /opt/python, then the runtime's own.
    return [
        str(tree.task_root),
        str(tree.opt / "python" / "lib" / f"python{python_version}" / "site-packages"),
        str(tree.opt / "python"),
        str(runtime),
    ]


def _variables(
    env: EnvConfig, target: FunctionTarget, environment: Mapping[str, str], memory_mb: int
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The sandbox's variables that hold no path of this run, in the order they apply: Lambda's own, the
    function's configured ones, our overrides (``{tmp}`` not yet filled in). With the paths of the run
    (``_sandbox_env``) they are the whole environment, so two jobs with equal ``_variables`` run with
    the same environment (``environment_sha256``)."""
    name = target.name
    lambda_own = {
        "_HANDLER": target.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{env.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "deploy-verify",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }
    overrides: dict[str, str] = {}
    for scope in ("*", target.key):
        overrides.update(env.verify.sandbox_env.get(scope, {}))
    return lambda_own, function_variables(environment), overrides


def environment_sha256(
    env: EnvConfig, *, target: FunctionTarget, environment: Mapping[str, str], memory_mb: int
) -> str:
    """What decides a job's sandbox environment, hashed: its variables (``_variables``), the runtime, and
    where its AWS calls go (the emulator, or nowhere). Equal digests: the same environment but for the
    paths of the run (its scratch folder, its trees)."""
    lambda_own, configured, overrides = _variables(env, target, environment, memory_mb)
    decided = [env.runtime, env.region, env.endpoint_url or "", lambda_own, configured, overrides]
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()


def _sandbox_env(env: EnvConfig, job: _Job, scratch: Path, endpoint_url: str) -> dict[str, str]:
    """Built from nothing: Lambda's variables, the function's own, our overrides, then isolation.

    Never the host's environment: it holds the deployer's credentials (see ``isolation``).
    """
    tmp = scratch / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "TMPDIR": str(tmp),
        "LAMBDA_TASK_ROOT": str(job.tree.task_root),
        "LAMBDA_RUNTIME_DIR": str(scratch),
        "LD_LIBRARY_PATH": f"{job.tree.task_root}:{job.tree.task_root / 'lib'}:{job.tree.opt / 'lib'}",
    }
    lambda_own, configured, overrides = _variables(env, job.target, job.environment, job.memory_mb)
    out.update(lambda_own)
    out.update(configured)
    out.update({key: value.replace("{tmp}", str(tmp)) for key, value in overrides.items()})
    out.update(aws_environment(env, scratch=scratch, endpoint_url=endpoint_url))
    return out


def _import_hint(job: _Job, raw: Mapping[str, Any], host_arch: str) -> str:
    """Turn 'No module named badmod._ext' into 'badmod/_ext…aarch64….so is an arm64 extension'."""
    missing = raw.get("missing_module")
    if not isinstance(missing, str):
        return ""
    parts = missing.split(".")
    hints = []
    for root in (job.tree.task_root, job.tree.opt / "python"):
        folder = root.joinpath(*parts[:-1])
        if not folder.is_dir():
            continue
        for candidate in folder.glob(f"{parts[-1]}.*so"):
            machine = elf_machine(candidate)
            rel = candidate.relative_to(root)
            if machine is not None and machine != host_arch:
                hints.append(f"{rel} is a {machine} extension; this function runs on {host_arch}")
            else:
                hints.append(f"{rel} exists but is not loadable by this runtime (wrong Python version or platform tag)")
    return ("; " + "; ".join(hints)) if hints else ""


def _run_sandbox(session: Session, job: _Job, *, scratch: Path, timeout_s: float) -> FunctionVerify:
    env = session.env
    environment = session.environment(job, scratch)
    identity = environment_sha256(env, target=job.target, environment=job.environment, memory_mb=job.memory_mb)
    to_run = []
    skipped: list[SmokeResult] = []
    for case in job.cases:
        reason = _skip_reason(case, environment)
        if reason:
            skipped.append(
                SmokeResult(case=case.name, ok=True, summary=f"skipped: {reason}", duration_ms=0.0, skipped=reason)
            )
        else:
            to_run.append(case)
    spec = {
        "task_root": str(job.tree.task_root),
        "sys_path": session.sys_path(job.tree),
        "handler": job.target.handler,
        "events": [{"name": c.name, "event": c.event} for c in to_run],
        "timeout_s": timeout_s,
        "context": {
            "function_name": job.target.name,
            "memory_limit_in_mb": job.memory_mb,
            "invoked_function_arn": job.function_arn
            or f"arn:aws:lambda:{env.region}:000000000000:function:{job.target.name}",
        },
    }
    spec_path = scratch / "spec.json"
    spec_path.write_text(json.dumps(spec, default=str))

    def failed(error: str, tail: str | None = None, import_ms: float | None = None) -> FunctionVerify:
        return FunctionVerify(
            key=job.target.key,
            name=job.target.name,
            import_ms=import_ms,
            results=tuple(skipped),
            ok=False,
            error=error,
            traceback_tail=tail,
            code_sha256=job.code_sha256,
            layers=job.layers,
            layer_code_sha256=job.layer_code_sha256,
            environment_sha256=identity,
        )

    try:
        # -B: /var/task is read-only on Lambda, so no .pyc is written there either (and cold imports
        # are timed as Lambda pays them).
        proc = session.run(job, ["-B", str(RUNNER), str(spec_path)], environment, scratch=scratch, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        return failed(f"timed out after {timeout_s:g} s (import or smoke events did not finish)")
    stderr_tail = proc.stderr.decode("utf-8", "replace")[-2000:] or None
    try:
        raw = json.loads(proc.stdout)
    except ValueError:
        return failed(f"sandbox process exited with {proc.returncode} without a report", stderr_tail)
    import_ms = raw.get("import_ms")
    if raw.get("error"):
        hint = (
            _import_hint(job, raw, host_architecture()) if raw.get("error_type") == "Runtime.ImportModuleError" else ""
        )
        return failed(raw["error"] + hint, raw.get("traceback_tail") or stderr_tail, import_ms)

    by_name = {c.name: c for c in to_run}
    results = list(skipped)
    for entry in raw.get("results", []):
        case = by_name[entry["name"]]
        if not entry.get("ok"):
            results.append(
                SmokeResult(
                    case=case.name,
                    ok=False,
                    summary="handler raised",
                    duration_ms=entry.get("duration_ms", 0.0),
                    error=entry.get("error"),
                    traceback_tail=entry.get("traceback_tail"),
                )
            )
            continue
        problems = check_expect(expectation_for(case.expect, aws=bool(env.endpoint_url)), entry.get("response"))
        results.append(
            SmokeResult(
                case=case.name,
                ok=not problems,
                summary="ok" if not problems else "response mismatch",
                duration_ms=entry.get("duration_ms", 0.0),
                error=("; ".join(problems) or None),
            )
        )
    order = {c.name: i for i, c in enumerate(job.cases)}
    results.sort(key=lambda r: order.get(r.case, len(order)))
    return FunctionVerify(
        key=job.target.key,
        name=job.target.name,
        import_ms=import_ms,
        results=tuple(results),
        ok=all(r.ok for r in results),
        code_sha256=job.code_sha256,
        layers=job.layers,
        layer_code_sha256=job.layer_code_sha256,
        environment_sha256=identity,
    )


@dataclass(frozen=True, kw_only=True)
class Session:
    """What every sandbox process of one run shares: the isolation decided once, the interpreter, the jail."""

    env: EnvConfig
    isolation: IsolationDecision
    #: The real binary: a venv's python3.12 is a link, often under a folder the jail does not show
    #: (a checkout in /tmp or the home, as on CI runners); its prefix is what the jail binds.
    python: Path
    runtime: Path  # the folder lending the host's boto3 & co. (``RUNTIME_PROVIDED``)
    endpoint_url: str
    jail: Jail | None  # bwrap mode only
    #: The emulator's socket on the host and the port the relay listens on in the jail (``endpoint_url``'s).
    relay: tuple[Path, int] | None = None

    def sys_path(self, tree: Tree) -> list[str]:
        return _sys_path(tree, self.env.python_version, self.runtime)

    def environment(self, job: _Job, scratch: Path) -> dict[str, str]:
        scratch.mkdir(parents=True, exist_ok=True)
        return _sandbox_env(self.env, job, scratch, self.endpoint_url)

    def wrapper(self, scratch: Path) -> list[str]:
        """What starts the interpreter: bwrap, unshare, or nothing (the decision said so and said it aloud)."""
        if self.jail is not None:  # mode bwrap: a jail, whatever else
            # Writable inside the jail: this run's scratch folder (HOME, TMPDIR, the sqlite files), nothing else.
            argv = argv_prefix(replace(self.jail, read_write=(scratch,)), bwrap=self.isolation.command or BWRAP)
            if self.relay is not None:
                socket_path, port = self.relay
                argv += [str(self.python), "-I", "-S", str(RELAY), str(port), str(socket_path), "--"]
            return argv
        if self.isolation.mode == "fallback" and self.isolation.command:
            return fallback_argv(unshare=self.isolation.command, share_network=bool(self.env.endpoint_url))
        return []

    def run(
        self, job: _Job, args: Sequence[str], environment: Mapping[str, str], *, scratch: Path, timeout_s: float
    ) -> subprocess.CompletedProcess[bytes]:
        """``python -I -S <args>`` in the task root, isolated; raises ``subprocess.TimeoutExpired``."""
        return subprocess.run(
            [*self.wrapper(scratch), str(self.python), "-I", "-S", *args],
            capture_output=True,
            timeout=timeout_s,
            env=dict(environment),
            cwd=job.tree.task_root,
            check=False,
        )


def _jail(
    env: EnvConfig, trees: Iterable[Tree], *, python: Path, runtime: Path, root: Path, relay: Path | None
) -> Jail:
    """What the sandbox may see: the system's libraries and TLS roots, the interpreter, this run's trees."""
    # The runtime folder holds symlinks to the host's boto3 & co.: their targets must resolve inside.
    lent = [p.resolve() for p in runtime.iterdir() if p.is_symlink()]
    trees = set(trees)
    return Jail(
        read_only=(
            *SYSTEM_PATHS,
            *interpreter_paths(python),
            RUNNER.parent,
            runtime,
            *lent,
            *(t.task_root for t in trees),
            *(t.opt for t in trees),
            *([relay] if relay else []),  # connectable through a read-only bind, as any Unix socket
        ),
        read_write=(),
        files=account_files(root / "etc"),
        # Its own network namespace, the emulator relayed into it; shared only with an emulator elsewhere
        # than the host's loopback (a fresh namespace cannot reach that, and the relay serves loopback only).
        share_network=bool(env.endpoint_url) and relay is None,
    )


def _loopback_port(endpoint_url: str | None) -> int | None:
    """The emulator's port when it listens on the host's loopback (the relay's case)."""
    parts = urllib.parse.urlsplit(endpoint_url or "")
    return parts.port if parts.hostname in ("127.0.0.1", "localhost") else None


@contextlib.contextmanager
def open_session(env: EnvConfig, trees: Iterable[Tree], *, python: Path, root: Path) -> Iterator[Session]:
    """The one way into the sandbox: the isolation decision (refused: nothing runs), then one session."""
    trees = tuple(trees)
    isolation = isolation_for(env)
    require_isolation(isolation)
    check_architecture(env, [(t.opt, t.task_root) for t in trees])
    if isolation.mode != "bwrap":
        announce(isolation.detail)
    root.mkdir(parents=True, exist_ok=True)
    runtime = _runtime_dir(root)
    python = python.resolve()
    port = _loopback_port(env.endpoint_url) if isolation.mode == "bwrap" else None
    with contextlib.ExitStack() as held:
        endpoint_url = held.enter_context(sandbox_endpoint(env))
        relay = None
        if port is not None:
            # A short folder of its own: a Unix socket's path has ~107 bytes at most.
            folder = Path(held.enter_context(tempfile.TemporaryDirectory(prefix="relay-")))
            relay = (held.enter_context(forwarder(folder / "emulator.sock", "127.0.0.1", port)), _inside(port))
            endpoint_url = f"http://127.0.0.1:{relay[1]}"
        # Only a decision that allows no jail runs without one: the fallback (emulator) or isolation none.
        jail = (
            _jail(env, trees, python=python, runtime=runtime, root=root, relay=relay[0] if relay else None)
            if isolation.mode == "bwrap"
            else None
        )
        yield Session(
            env=env,
            isolation=isolation,
            python=python,
            runtime=runtime,
            endpoint_url=endpoint_url,
            jail=jail,
            relay=relay,
        )


def _inside(port: int) -> int:
    """The relay's port in the jail: the emulator's, unless below 1024, which only a capability may bind
    (the jail has none); any port is free in the jail's own network namespace."""
    return port if port >= 1024 else port + 10_000


#: Told each function's result as soon as it is known (a progress display).
OnResult = Callable[[FunctionVerify], None]


def _run_jobs(
    env: EnvConfig,
    jobs: Sequence[_Job],
    *,
    python: Path,
    root: Path,
    timeout_s: float,
    on_result: OnResult | None = None,
    workers: int | None = None,
) -> list[FunctionVerify]:
    """Each job in its own sandbox process, up to ``workers`` (default: the usable cores) at a time.
    ``on_result`` hears each result as it finishes; the list returned is in the order of ``jobs``,
    whatever finished first, so a parallel run reports exactly as a serial one."""
    workers = max(1, min(workers or usable_cores(), len(jobs)))
    with (
        open_session(env, [j.tree for j in jobs], python=python, root=root) as session,
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        futures = [
            pool.submit(_run_sandbox, session, job, scratch=root / "run" / job.target.key, timeout_s=timeout_s)
            for job in jobs
        ]
        if on_result is not None:
            for finished in concurrent.futures.as_completed(futures):
                on_result(finished.result())
        return [f.result() for f in futures]


def _functions_of(targets_or_functions: Targets | Sequence[FunctionTarget]) -> tuple[FunctionTarget, ...]:
    functions = (
        targets_or_functions.functions if isinstance(targets_or_functions, Targets) else tuple(targets_or_functions)
    )
    if not functions:
        raise VerifyError("nothing to verify: no functions given")
    return functions


def verify_local(
    env: EnvConfig,
    targets_or_functions: Targets | Sequence[FunctionTarget],
    *,
    layer: Artifact,
    function: Artifact,
    python: Path | None = None,
    environment: Mapping[str, Mapping[str, str]] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: OnResult | None = None,
    trees: ExtractionCache | None = None,
    memory_mb: Mapping[str, int] | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Run the built artifacts (before upload) in the sandbox.

    ``environment`` maps a function key to the variables it will have on Lambda (optional), ``memory_mb``
    to its memory size (default 128), so that the sandbox's environment is the one the deployed verify
    would build. ``workers``: sandboxes at once (default: the usable cores).
    ``trees`` keeps the extracted zips for the deployed verify and later runs (``deploy.verify.extracted``);
    without it they are extracted into this run's temporary folder and dropped with it.
    """
    functions = _functions_of(targets_or_functions)
    jobs_cases = smoke_for(env, functions)
    python = python or find_runtime_python(env.python_version)
    for artifact in (layer, function):
        try:
            artifact.check()
        except BuildError as exc:
            raise VerifyError(exc.message, hint=exc.hint) from None
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp, contextlib.ExitStack() as held:
        root = Path(tmp)
        cache = trees or ExtractionCache(root=root / "extracted")
        tree = built_tree(held, cache, layer=layer, function=function)
        jobs = [
            _Job(
                target=fn,
                tree=tree,
                cases=jobs_cases[fn.key],
                environment=dict((environment or {}).get(fn.key, {})),
                memory_mb=(memory_mb or {}).get(fn.key, 128),
                code_sha256=function.code_sha256,
                layers=(layer.path.name,),
                layer_code_sha256=(layer.code_sha256,),
            )
            for fn in functions
        ]
        results = _run_jobs(
            env, jobs, python=python, root=root, timeout_s=timeout_s, on_result=on_result, workers=workers
        )
    return _report(env, "local", results, python)

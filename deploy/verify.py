"""Prove that functions import and answer: in a Lambda-like sandbox, and on real AWS by invoking them.

The sandbox runs the runtime's own interpreter (``python3.12 -I -S``) in a fresh process per
function, with only the extracted function zip (the task root) and layer zip(s) (``/opt``) on
``sys.path`` in Lambda's order — so a dependency missing from the layer, a module left out of the
function zip, a handler typo or a wrong-platform extension fails here as it would on Lambda.

``verify_local`` runs the artifacts just built; ``verify_deployed`` first checks what the ``live``
alias serves against the expected artifacts, downloads the deployed bytes and refuses to run them
unless they hash to the CodeSha256 Lambda reports, then runs them; with ``remote`` it also invokes
the alias itself. Handler failures come back as a report with ``ok=False`` (the task turns that
into a ``VerifyError`` and rolls back); setup problems raise ``VerifyError`` straight away.

Smoke expectations (``expect`` of a ``SmokeCase``; every key optional, all must hold):

``type``                   ``dict`` | ``list`` | ``str`` | ``int`` | ``number`` | ``bool`` | ``null``
``statusCode``             the response is a dict whose ``statusCode`` equals this (API Gateway proxy)
``keys``                   the response is a dict holding these keys
``equals``                 the response is a dict and each given key equals the given value
``numeric_values_except``  the response is a dict whose values are numbers, except under these keys
``json_body_keys``         the response ``body`` (base64-decoded if ``isBase64Encoded``) is a JSON object
                           holding these keys
``json_body_equals``       ...and each given body key equals the given value

Directives, also under ``expect``, that choose where a case runs rather than what it must return:

``requires_env``           names of environment variables the function must see; without them the
                           case is reported as skipped (e.g. the admin route needs the cleanup
                           function's name, which only a deployed API has)
``remote``                 ``false``: never send this case to the deployed alias (it would act on
                           real data or call real services); the sandbox still runs it
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import hashlib
import http.client
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from deploy.archive import safe_extract
from deploy.artifact import Artifact
from deploy.aws.publish import identity_from_description
from deploy.config import EnvConfig, FunctionTarget, SmokeCase, Targets
from deploy.errors import BuildError, ConfigError, VerifyError

Mode = Literal["local", "deployed"]

RUNNER = Path(__file__).resolve().parent / "sandbox_runner.py"
DEFAULT_TIMEOUT_S = 60.0
#: Two cores on CI runners: more parallel interpreters only thrash.
MAX_WORKERS = 2
HTTP_TIMEOUT_S = 15.0
#: Log events a little older than our first invoke still count (clock skew), but not an earlier
#: deploy's errors that were already rolled back.
LOG_LOOKBACK_MS = 30 * 1000
#: What Lambda's python runtimes provide after the layers (/var/lang/.../site-packages, /var/runtime):
#: a function may rely on them without shipping them, so the sandbox lends the host's copies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
_ELF_MACHINES = {3: "x86 (i386)", 40: "arm (32-bit)", 62: "x86_64", 183: "arm64 (aarch64)"}

# ---------------------------------------------------------------------------
# Smoke cases


def _http_v2_event(method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event; Mangum also takes REST (1.0) ones."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "verify.local", "content-type": "application/json", "user-agent": "deploy-verify"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "verify",
            "domainName": "verify.local",
            "domainPrefix": "verify",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "deploy-verify",
            },
            "requestId": "deploy-verify",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2024:00:00:00 +0000",
            "timeEpoch": 1704067200000,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def _sqs_event(message_id: str, body: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": "deploy-verify",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1704067200000"},
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:deploy-verify",
                "awsRegion": "us-east-1",
            }
        ]
    }


_VALID_RUNBOOK = json.dumps({"runbook_id": "deploy-verify", "steps": ["check"]})

DEFAULT_SMOKE: Mapping[str, tuple[SmokeCase, ...]] = {
    "api": (
        SmokeCase(
            name="health",
            event=_http_v2_event("GET", "/health"),
            expect={"statusCode": 200, "json_body_equals": {"status": "ok"}},
        ),
        SmokeCase(
            # Through the API to the cleanup function; the emulator does not run the invoked function,
            # so only the status and the envelope's shape are checked, not the counts inside it.
            name="admin-cleanup-dry-run",
            event=_http_v2_event("POST", "/admin/cleanup", {"action": "all", "dry_run": True}),
            expect={"statusCode": 200, "json_body_keys": ["result"], "requires_env": ["CLEANUP_FUNCTION_NAME"]},
        ),
    ),
    "cleanup": (
        SmokeCase(
            name="dry-run-all",
            event={"action": "all", "dry_run": True},
            expect={
                "type": "dict",
                "equals": {"action": "all", "dry_run": True},
                "numeric_values_except": ["action", "dry_run", "notes"],
            },
        ),
    ),
    "db_sync": (
        SmokeCase(
            # No tables: the run connects to both databases and commits nothing. The sandbox points
            # SOURCE_DATABASE_URL at its own SQLite file; remotely it needs the function's own setting.
            name="dry-run-no-tables",
            event={"source": "database", "dry_run": True, "tables": []},
            expect={
                "type": "dict",
                "equals": {"dry_run": True, "copied": 0, "updated": 0},
                "requires_env": ["SOURCE_DATABASE_URL"],
            },
        ),
    ),
    "eval_runbook_worker": (
        SmokeCase(
            # Valid and, in the sandbox, with no EVAL_API_URL: validated, not posted. Never sent to the
            # deployed worker, which would post it to the real evaluation API.
            name="valid-record",
            event=_sqs_event("deploy-verify-valid", _VALID_RUNBOOK),
            expect={"equals": {"batchItemFailures": []}, "remote": False},
        ),
        SmokeCase(
            # Invalid messages are returned to the queue without any outbound call: safe everywhere.
            name="invalid-record-returned",
            event=_sqs_event("deploy-verify-invalid", "not json"),
            expect={"equals": {"batchItemFailures": [{"itemIdentifier": "deploy-verify-invalid"}]}},
        ),
    ),
}

#: Environment the sandbox forces per function; ``{tmp}`` is the function's scratch directory.
#: The sandbox runs on the deployer's machine, outside the VPC: it must never reach the real
#: databases or post to real services — that is the remote invoke's job.
SANDBOX_ENV: Mapping[str, Mapping[str, str]] = {
    "*": {"DATABASE_URL": "sqlite:///{tmp}/sandbox.db"},
    "db_sync": {"SOURCE_DATABASE_URL": "sqlite:///{tmp}/sandbox-source.db"},
    "eval_runbook_worker": {"EVAL_API_URL": ""},
}

_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_LIST_KEYS = ("keys", "json_body_keys", "numeric_values_except", "requires_env")
_MAP_KEYS = ("equals", "json_body_equals")
EXPECT_KEYS = frozenset({"type", "statusCode", "remote", *_LIST_KEYS, *_MAP_KEYS})


def validate_expect(expect: Mapping[str, Any], where: str) -> None:
    """Refuse an expectation we cannot evaluate before anything runs."""
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown expect key(s) {', '.join(unknown)}; known: {', '.join(sorted(EXPECT_KEYS))}"
        )
    if "type" in expect and expect["type"] not in _TYPES:
        raise ConfigError(f"{where}: expect.type {expect['type']!r} is not one of {', '.join(_TYPES)}")
    if "statusCode" in expect and (not isinstance(expect["statusCode"], int) or isinstance(expect["statusCode"], bool)):
        raise ConfigError(f"{where}: expect.statusCode must be an integer")
    if "remote" in expect and not isinstance(expect["remote"], bool):
        raise ConfigError(f"{where}: expect.remote must be true or false")
    for key in _LIST_KEYS:
        if key in expect and (
            not isinstance(expect[key], list | tuple) or not all(isinstance(k, str) for k in expect[key])
        ):
            raise ConfigError(f"{where}: expect.{key} must be a list of strings")
    for key in _MAP_KEYS:
        if key in expect and not isinstance(expect[key], Mapping):
            raise ConfigError(f"{where}: expect.{key} must be a mapping")


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=repr, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "…"


def _json_body(response: Any) -> tuple[Any, str | None]:
    if not isinstance(response, Mapping) or "body" not in response:
        return None, "response has no body"
    body = response["body"]
    if not isinstance(body, str):
        return None, f"body is {type(body).__name__}, not a string"
    if response.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            return None, f"body is not valid base64 UTF-8: {exc}"
    try:
        return json.loads(body), None
    except ValueError:
        return None, f"body is not JSON: {_short(body, 120)}"


def check_expect(expect: Mapping[str, Any], response: Any) -> list[str]:
    """Every way ``response`` misses ``expect``, each as 'expected … got …'; empty means it matches."""
    problems: list[str] = []
    if "type" in expect and not _TYPES[expect["type"]](response):
        problems.append(f"expected type {expect['type']}, got {type(response).__name__}: {_short(response)}")
    needs_dict = [k for k in ("statusCode", "keys", "equals", "numeric_values_except") if k in expect]
    if needs_dict and not isinstance(response, Mapping):
        problems.append(
            f"expected a dict (for {', '.join(needs_dict)}), got {type(response).__name__}: {_short(response)}"
        )
        return problems
    if "statusCode" in expect and response.get("statusCode") != expect["statusCode"]:
        body = response.get("body")
        problems.append(
            f"expected statusCode {expect['statusCode']}, got {response.get('statusCode')!r} (body: {_short(body)})"
        )
    if "keys" in expect:
        missing = [k for k in expect["keys"] if k not in response]
        if missing:
            problems.append(f"expected keys {list(expect['keys'])}, missing {missing}; got keys {sorted(response)}")
    for key, want in (expect.get("equals") or {}).items():
        got = response.get(key, "<missing>")
        if got != want:
            problems.append(f"expected {key} == {_short(want)}, got {_short(got)}")
    if "numeric_values_except" in expect:
        skip = set(expect["numeric_values_except"])
        bad = {k: v for k, v in response.items() if k not in skip and not _TYPES["number"](v)}
        if bad:
            problems.append(f"expected numeric values (except {sorted(skip)}), got non-numeric {_short(bad)}")
    if "json_body_keys" in expect or "json_body_equals" in expect:
        body, why = _json_body(response)
        if why is not None:
            problems.append(f"expected a JSON body, but {why}")
        elif not isinstance(body, Mapping):
            problems.append(f"expected a JSON object body, got {_short(body)}")
        else:
            missing = [k for k in expect.get("json_body_keys", ()) if k not in body]
            if missing:
                problems.append(
                    f"expected body keys {list(expect['json_body_keys'])}, missing {missing}: {_short(body)}"
                )
            for key, want in (expect.get("json_body_equals") or {}).items():
                got = body.get(key, "<missing>")
                if got != want:
                    problems.append(f"expected body {key} == {_short(want)}, got {_short(got)}")
    return problems


def smoke_cases(env: EnvConfig, key: str) -> tuple[SmokeCase, ...]:
    """invoke.yaml's cases for ``key`` when it has any, otherwise ours; validated either way."""
    cases = env.verify.smoke.get(key) or DEFAULT_SMOKE.get(key, ())
    for case in cases:
        validate_expect(case.expect, f"smoke case {key}/{case.name}")
    return tuple(cases)


# ---------------------------------------------------------------------------
# Reports


@dataclass(frozen=True, kw_only=True)
class SmokeResult:
    case: str
    ok: bool
    summary: str
    duration_ms: float
    error: str | None = None
    traceback_tail: str | None = None
    skipped: str | None = None  # why the case did not run (then ok is True)
    where: Literal["sandbox", "remote"] = "sandbox"


@dataclass(frozen=True, kw_only=True)
class FunctionVerify:
    key: str
    name: str
    import_ms: float | None
    results: tuple[SmokeResult, ...]
    ok: bool
    error: str | None = None
    traceback_tail: str | None = None
    code_sha256: str | None = None
    layers: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        out = [f"{self.name}: {self.error}"] if self.error else []
        out += [f"{self.name} [{r.where}] case {r.case}: {r.error}" for r in self.results if not r.ok]
        return out


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    env: str
    mode: Mode
    functions: tuple[FunctionVerify, ...]
    ok: bool
    python: str | None = None

    def problems(self) -> list[str]:
        return [p for fn in self.functions for p in fn.problems()]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def raise_for_failures(self) -> None:
        """For the task layer: one VerifyError listing every failure."""
        if not self.ok:
            raise VerifyError(
                f"verify ({self.mode}, {self.env}) failed:\n  " + "\n  ".join(self.problems()),
                hint="the sandbox ran the exact artifacts with only the layer on sys.path; fix the first error first",
            )


# ---------------------------------------------------------------------------
# The runtime interpreter


def _python_version_of(path: Path, env: Mapping[str, str] | None = None) -> tuple[str, Path] | None:
    """(``X.Y``, the real executable) — a pyenv shim resolves to the interpreter behind it, which the
    sandbox must call directly: it runs with a scrubbed environment in which the shim cannot work."""
    try:
        proc = subprocess.run(
            [str(path), "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=None if env is None else dict(env),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 2 or not lines[1].strip():
        return None
    return lines[0].strip(), Path(lines[1].strip())


def find_runtime_python(python_version: str, *, env: Mapping[str, str] = os.environ) -> Path:
    """The interpreter matching Lambda's runtime: ``pythonX.Y`` on PATH, else pyenv's.

    Running the version check matters: a pyenv shim on PATH exists even when the version is not
    installed, and only fails when run.
    """
    exe = f"python{python_version}"
    candidates: list[Path] = []
    found = shutil.which(exe, path=env.get("PATH", ""))
    if found:
        candidates.append(Path(found))
    pyenv_root = (
        Path(env["PYENV_ROOT"])
        if env.get("PYENV_ROOT")
        else (Path(env["HOME"]) / ".pyenv" if env.get("HOME") else None)
    )
    pyenv = shutil.which("pyenv", path=env.get("PATH", ""))
    if pyenv:
        try:
            proc = subprocess.run(
                [pyenv, "prefix", python_version],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=dict(env),
            )
            if proc.returncode == 0:
                candidates += [Path(p) / "bin" / exe for p in proc.stdout.split(":") if p.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    if pyenv_root is not None and (pyenv_root / "versions").is_dir():
        # Newest patch release first.
        versions = sorted(
            (pyenv_root / "versions").glob(f"{python_version}.*"),
            key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
            reverse=True,
        )
        candidates += [v / "bin" / exe for v in versions]
    for candidate in candidates:
        found_version = _python_version_of(candidate, env) if candidate.is_file() else None
        if found_version is not None and found_version[0] == python_version:
            return found_version[1]
    raise VerifyError(
        f"runtime python{python_version} needs a Python {python_version} interpreter to verify; "
        f"install it (e.g. `pyenv install {python_version}`) or configure verify.docker",
        hint=f"looked for {exe} on PATH and under {pyenv_root or '~/.pyenv'}/versions",
    )


def _host_architecture() -> str:
    machine = platform.machine().lower()
    return _MACHINES.get(machine, machine)


def _elf_machine(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
    number = int.from_bytes(head[18:20], order)
    return _ELF_MACHINES.get(number, f"machine {number}")


def _native_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (p.suffix == ".so" or ".so." in p.name)]


# ---------------------------------------------------------------------------
# Sandbox


@dataclass(frozen=True, kw_only=True)
class _Tree:
    """One extracted function + layers combination, shared by the functions that deploy it."""

    task_root: Path
    opt: Path


@dataclass(frozen=True, kw_only=True)
class _Job:
    target: FunctionTarget
    tree: _Tree
    cases: tuple[SmokeCase, ...]
    environment: Mapping[str, str]  # the function's configured variables
    memory_mb: int = 128
    function_arn: str | None = None
    code_sha256: str | None = None
    layers: tuple[str, ...] = ()


def _extract(zip_path: Path, dest: Path, what: str) -> None:
    try:
        safe_extract(zip_path, dest)
    except BuildError as exc:
        raise VerifyError(f"{what}: {exc.message}", hint="the zip is unsafe or unreadable; nothing was run") from None


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


def _sys_path(tree: _Tree, python_version: str, runtime: Path) -> list[str]:
    # Lambda: /var/task, /opt/python/lib/pythonX.Y/site-packages, /opt/python, then the runtime's own.
    return [
        str(tree.task_root),
        str(tree.opt / "python" / "lib" / f"python{python_version}" / "site-packages"),
        str(tree.opt / "python"),
        str(runtime),
    ]


def _sandbox_env(env: EnvConfig, job: _Job, scratch: Path, base: Mapping[str, str]) -> dict[str, str]:
    tmp = scratch / "tmp"
    home = scratch / "home"
    tmp.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    name = job.target.name
    out: dict[str, str] = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LAMBDA_TASK_ROOT": str(job.tree.task_root),
        "LAMBDA_RUNTIME_DIR": str(scratch),
        "LD_LIBRARY_PATH": f"{job.tree.task_root}:{job.tree.task_root / 'lib'}:{job.tree.opt / 'lib'}",
        "_HANDLER": job.target.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{env.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(job.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "deploy-verify",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }
    out.update(base)
    out.update(job.environment)
    for scope in ("*", job.target.key):
        for key, value in SANDBOX_ENV.get(scope, {}).items():
            out[key] = value.replace("{tmp}", str(tmp))
    return out


def _skip_reason(case: SmokeCase, environment: Mapping[str, str]) -> str | None:
    missing = [k for k in case.expect.get("requires_env", ()) if not environment.get(k)]
    return f"needs {', '.join(missing)} in the function's environment" if missing else None


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
            machine = _elf_machine(candidate)
            rel = candidate.relative_to(root)
            if machine is not None and machine != host_arch:
                hints.append(f"{rel} is a {machine} extension; this function runs on {host_arch}")
            else:
                hints.append(f"{rel} exists but is not loadable by this runtime (wrong Python version or platform tag)")
    return ("; " + "; ".join(hints)) if hints else ""


def _run_sandbox(
    env: EnvConfig, job: _Job, *, python: Path, runtime: Path, scratch: Path, base: Mapping[str, str], timeout_s: float
) -> FunctionVerify:
    scratch.mkdir(parents=True, exist_ok=True)
    environment = _sandbox_env(env, job, scratch, base)
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
        "sys_path": _sys_path(job.tree, env.python_version, runtime),
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
        )

    try:
        proc = subprocess.run(
            # -B: /var/task is read-only on Lambda, so no .pyc is written there either (and cold imports
            # are timed as Lambda pays them).
            [str(python), "-I", "-S", "-B", str(RUNNER), str(spec_path)],
            capture_output=True,
            timeout=timeout_s,
            env=environment,
            cwd=job.tree.task_root,
            check=False,
        )
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
            _import_hint(job, raw, _host_architecture()) if raw.get("error_type") == "Runtime.ImportModuleError" else ""
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
        problems = check_expect(case.expect, entry.get("response"))
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
    )


def _check_architecture(env: EnvConfig, trees: Iterable[_Tree]) -> None:
    host = _host_architecture()
    if env.architecture == host:
        return
    for tree in trees:
        native = _native_files(tree.opt) + _native_files(tree.task_root)
        if native:
            raise VerifyError(
                f"cannot verify {env.architecture} artifacts with native code on a {host} machine "
                f"(e.g. {native[0].name}); run verify on a {env.architecture} host",
            )


def _run_jobs(
    env: EnvConfig, jobs: Sequence[_Job], *, python: Path, root: Path, timeout_s: float
) -> list[FunctionVerify]:
    from deploy.aws.session import sandbox_environment

    _check_architecture(env, {j.tree for j in jobs})
    runtime = _runtime_dir(root)
    base = sandbox_environment(env)
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1, len(jobs)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                _run_sandbox,
                env,
                job,
                python=python,
                runtime=runtime,
                scratch=root / "run" / job.target.key,
                base=base,
                timeout_s=timeout_s,
            )
            for job in jobs
        ]
        return [f.result() for f in futures]


def _functions_of(targets_or_functions: Targets | Sequence[FunctionTarget]) -> tuple[FunctionTarget, ...]:
    functions = (
        targets_or_functions.functions if isinstance(targets_or_functions, Targets) else tuple(targets_or_functions)
    )
    if not functions:
        raise VerifyError("nothing to verify: no functions given")
    return functions


def _report(env: EnvConfig, mode: Mode, results: Sequence[FunctionVerify], python: Path) -> VerifyReport:
    return VerifyReport(
        env=env.name, mode=mode, functions=tuple(results), ok=all(r.ok for r in results), python=str(python)
    )


def verify_local(
    env: EnvConfig,
    targets_or_functions: Targets | Sequence[FunctionTarget],
    *,
    layer: Artifact,
    function: Artifact,
    python: Path | None = None,
    environment: Mapping[str, Mapping[str, str]] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> VerifyReport:
    """Run the built artifacts (before upload) in the sandbox.

    ``environment`` maps a function key to the variables it will have on Lambda (optional).
    """
    functions = _functions_of(targets_or_functions)
    jobs_cases = {fn.key: smoke_cases(env, fn.key) for fn in functions}
    python = python or find_runtime_python(env.python_version)
    for artifact in (layer, function):
        try:
            artifact.check()
        except BuildError as exc:
            raise VerifyError(exc.message, hint=exc.hint) from None
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        root = Path(tmp)
        tree = _Tree(task_root=root / "task", opt=root / "opt")
        _extract(layer.path, tree.opt, f"layer {layer.path.name}")
        _extract(function.path, tree.task_root, f"function {function.path.name}")
        jobs = [
            _Job(
                target=fn,
                tree=tree,
                cases=jobs_cases[fn.key],
                environment=dict((environment or {}).get(fn.key, {})),
                code_sha256=function.code_sha256,
                layers=(layer.path.name,),
            )
            for fn in functions
        ]
        results = _run_jobs(env, jobs, python=python, root=root, timeout_s=timeout_s)
    return _report(env, "local", results, python)


# ---------------------------------------------------------------------------
# Deployed state and bytes


def _hex_of(code_sha: str) -> str:
    return base64.b64decode(code_sha).hex()


def http_get(url: str) -> bytes:
    """Download a presigned Code.Location / Content.Location URL."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an HTTP URL: {url[:40]}")
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310 - scheme checked above
        data: bytes = resp.read()
    return data


def _code_sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


@dataclass
class _Fetcher:
    env: EnvConfig
    bucket: str
    s3: Any
    lam: Any
    fetch: Callable[[str], bytes] | None
    dest: Path
    cache: dict[str, Path] = field(default_factory=dict)

    def _from_url(self, url: str | None) -> bytes | None:
        # The emulator's Locations name hosts it does not serve; go straight to our S3 copy.
        if not url or self.fetch is None or self.env.endpoint_url:
            return None
        try:
            return self.fetch(url)
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def _from_s3(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError:
            return None
        return body

    def _store(self, code_sha: str, data: bytes, what: str) -> Path:
        if _code_sha(data) != code_sha:
            raise VerifyError(
                f"deployed zip for {what} does not match CodeSha256 {code_sha} (downloaded bytes hash to "
                f"{_code_sha(data)}); refusing to run it",
                hint=f"the S3 object in {self.bucket} was changed after the deploy; redeploy",
            )
        path = self.dest / f"{_hex_of(code_sha)}.zip"
        path.write_bytes(data)
        self.cache[code_sha] = path
        return path

    def function_zip(self, name: str, qualifier: str, code_sha: str) -> Path:
        if code_sha in self.cache:
            return self.cache[code_sha]
        location = self.lam.get_function(FunctionName=name, Qualifier=qualifier)["Code"].get("Location")
        data = self._from_url(location)
        if data is None or _code_sha(data) != code_sha:
            data = self._from_s3(f"lambda/function-{_hex_of(code_sha)}.zip")
        if data is None:
            raise VerifyError(
                f"cannot download the deployed code of {name}: Code.Location failed and "
                f"s3://{self.bucket}/lambda/function-{_hex_of(code_sha)}.zip is missing"
            )
        return self._store(code_sha, data, name)

    def layer_zip(self, arn: str) -> tuple[Path, str]:
        # get_layer_version takes the unversioned ARN (any account's) plus the number; the emulator
        # implements it, unlike get_layer_version_by_arn.
        layer_arn, _, number = arn.rpartition(":")
        if not layer_arn or not number.isdigit():
            raise VerifyError(f"layer version ARN {arn!r} has no version number")
        info = self.lam.get_layer_version(LayerName=layer_arn, VersionNumber=int(number))
        content = info.get("Content", {})
        code_sha = content.get("CodeSha256")
        if not code_sha:
            raise VerifyError(f"layer version {arn} reports no CodeSha256")
        if code_sha in self.cache:
            return self.cache[code_sha], code_sha
        data = self._from_url(content.get("Location"))
        if data is None or _code_sha(data) != code_sha:
            data = None
            identity = identity_from_description(info.get("Description"))
            keys = [f"lambda/layer-{identity}.zip"] if identity else []
            keys += self._layer_keys(content.get("CodeSize"))
            for key in dict.fromkeys(keys):
                candidate = self._from_s3(key)
                if candidate is not None and _code_sha(candidate) == code_sha:
                    data = candidate
                    break
                data = data or candidate
        if data is None:
            raise VerifyError(
                f"cannot download layer version {arn}: Content.Location failed and "
                f"no lambda/layer-*.zip in {self.bucket} matches it"
            )
        return self._store(code_sha, data, arn), code_sha

    def _layer_keys(self, size: int | None) -> list[str]:
        """Our layer objects whose size fits: hashing only those keeps the search cheap."""
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="lambda/layer-"):
            keys += [o["Key"] for o in page.get("Contents", []) if size is None or o.get("Size") == size]
        return keys


def _state_problems(
    cfg_alias: Mapping[str, Any],
    cfg_latest: Mapping[str, Any],
    layer_shas: Mapping[str, str],
    targets: Targets,
    expected_layer: Artifact | None,
    expected_function: Artifact | None,
) -> list[str]:
    problems = []
    if expected_function is not None:
        for label, cfg in ((targets.alias, cfg_alias), ("$LATEST", cfg_latest)):
            if cfg.get("CodeSha256") != expected_function.code_sha256:
                problems.append(
                    f"{label} serves code {cfg.get('CodeSha256')}, expected {expected_function.code_sha256} "
                    f"({expected_function.path.name})"
                )
    if expected_layer is not None:
        ours = [a for a in layer_shas if f":layer:{targets.layer_name}:" in a]
        if not ours:
            problems.append(f"{targets.alias} has no version of layer {targets.layer_name}")
        for arn in ours:
            if layer_shas[arn] != expected_layer.code_sha256:
                problems.append(
                    f"{targets.alias} uses {arn} with CodeSha256 {layer_shas[arn]}, "
                    f"expected {expected_layer.code_sha256}"
                )
        latest = [lay["Arn"] for lay in cfg_latest.get("Layers", [])]
        alias_layers = [lay["Arn"] for lay in cfg_alias.get("Layers", [])]
        if latest != alias_layers:
            problems.append(f"$LATEST layers {latest} differ from {targets.alias} layers {alias_layers}")
    return problems


def verify_deployed(
    env: EnvConfig,
    targets: Targets,
    *,
    expected_layer: Artifact | None = None,
    expected_function: Artifact | None = None,
    python: Path | None = None,
    remote: bool | None = None,
    fetch: Callable[[str], bytes] | None = http_get,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> VerifyReport:
    """Check what the alias serves, run those exact bytes in the sandbox, and (``remote``) invoke it."""
    from deploy.aws.calls import client

    functions = _functions_of(targets)
    cases = {fn.key: smoke_cases(env, fn.key) for fn in functions}
    python = python or find_runtime_python(env.python_version)
    remote = env.verify.remote if remote is None else remote
    lam = client(env, "lambda")
    s3 = client(env, "s3")
    states: dict[str, FunctionVerify] = {}
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        root = Path(tmp)
        (root / "zips").mkdir()
        fetcher = _Fetcher(env=env, bucket=targets.bucket, s3=s3, lam=lam, fetch=fetch, dest=root / "zips")
        trees: dict[tuple[str, ...], _Tree] = {}
        jobs: list[_Job] = []
        for fn in functions:
            cfg_alias = lam.get_function_configuration(FunctionName=fn.name, Qualifier=targets.alias)
            cfg_latest = lam.get_function_configuration(FunctionName=fn.name)
            layer_arns = [lay["Arn"] for lay in cfg_alias.get("Layers", [])]
            layer_zips = [fetcher.layer_zip(arn) for arn in layer_arns]
            layer_shas = dict(zip(layer_arns, (sha for _, sha in layer_zips), strict=True))
            problems = _state_problems(cfg_alias, cfg_latest, layer_shas, targets, expected_layer, expected_function)
            if problems:
                states[fn.key] = FunctionVerify(
                    key=fn.key,
                    name=fn.name,
                    import_ms=None,
                    results=(),
                    ok=False,
                    error="; ".join(problems),
                    code_sha256=cfg_alias.get("CodeSha256"),
                    layers=tuple(layer_arns),
                )
                continue
            code_zip = fetcher.function_zip(fn.name, targets.alias, cfg_alias["CodeSha256"])
            tree_key = (cfg_alias["CodeSha256"], *(sha for _, sha in layer_zips))
            if tree_key not in trees:
                base = root / "trees" / str(len(trees))
                tree = _Tree(task_root=base / "task", opt=base / "opt")
                # Lambda extracts layers in order into /opt; a later one overwrites an earlier one's files.
                for path, _ in layer_zips:
                    _extract(path, tree.opt, f"layer {path.name} of {fn.name}")
                _extract(code_zip, tree.task_root, f"code of {fn.name}")
                trees[tree_key] = tree
            jobs.append(
                _Job(
                    target=replace(fn, handler=cfg_alias.get("Handler") or fn.handler),
                    tree=trees[tree_key],
                    cases=cases[fn.key],
                    environment=dict((cfg_alias.get("Environment") or {}).get("Variables") or {}),
                    memory_mb=int(cfg_alias.get("MemorySize") or 128),
                    function_arn=cfg_alias.get("FunctionArn"),
                    code_sha256=cfg_alias["CodeSha256"],
                    layers=tuple(layer_arns),
                )
            )
        sandboxed = (
            {r.key: r for r in _run_jobs(env, jobs, python=python, root=root, timeout_s=timeout_s)} if jobs else {}
        )
    results: list[FunctionVerify] = []
    for fn in functions:
        if fn.key in states:
            results.append(states[fn.key])
            continue
        result = sandboxed[fn.key]
        if remote and result.ok:
            job = next(j for j in jobs if j.target.key == fn.key)
            result = _with_remote(result, remote_check(env, fn, job.cases, job.environment, alias=targets.alias))
        results.append(result)
    return _report(env, "deployed", results, python)


# ---------------------------------------------------------------------------
# Remote invoke (real AWS)


def _with_remote(result: FunctionVerify, remote_results: Sequence[SmokeResult]) -> FunctionVerify:
    merged = (*result.results, *remote_results)
    return replace(result, results=merged, ok=result.ok and all(r.ok for r in remote_results))


def remote_check(
    env: EnvConfig,
    fn: FunctionTarget,
    cases: Sequence[SmokeCase],
    environment: Mapping[str, str],
    *,
    alias: str = "live",
    lam: Any = None,
    logs: Any = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> list[SmokeResult]:
    """Invoke the alias with each remote-safe case, then look for import errors in its recent logs."""
    from deploy.aws.calls import client

    lam = lam or client(env, "lambda")
    logs = logs or client(env, "logs")
    started = now_ms()
    out: list[SmokeResult] = []
    for case in cases:
        if case.expect.get("remote") is False:
            continue
        reason = _skip_reason(case, environment)
        if reason:
            out.append(
                SmokeResult(
                    case=case.name,
                    ok=True,
                    summary=f"skipped: {reason}",
                    duration_ms=0.0,
                    skipped=reason,
                    where="remote",
                )
            )
            continue
        t0 = time.perf_counter()
        resp = lam.invoke(
            FunctionName=fn.name,
            Qualifier=alias,
            InvocationType="RequestResponse",
            LogType="Tail",
            Payload=json.dumps(case.event).encode(),
        )
        duration = round((time.perf_counter() - t0) * 1000, 2)
        raw = resp["Payload"].read() if resp.get("Payload") is not None else b""
        log_tail = base64.b64decode(resp.get("LogResult") or "").decode("utf-8", "replace")
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        error: str | None = None
        summary = "ok"
        if resp.get("FunctionError") or "Runtime.ImportModuleError" in log_tail:
            summary = "function error"
            if isinstance(payload, Mapping) and "errorMessage" in payload:
                error = f"{payload.get('errorType', 'Error')}: {payload['errorMessage']}"
            else:
                error = f"FunctionError {resp.get('FunctionError') or 'in log'}: {_short(payload)}"
        else:
            problems = check_expect(case.expect, payload)
            if problems:
                summary, error = "response mismatch", "; ".join(problems)
        out.append(
            SmokeResult(
                case=case.name,
                ok=error is None,
                summary=summary,
                duration_ms=duration,
                error=error,
                traceback_tail=log_tail[-2000:] if error else None,
                where="remote",
            )
        )
    out += _log_import_errors(logs, fn.name, since_ms=started - LOG_LOOKBACK_MS)
    return out


def _log_import_errors(logs: Any, name: str, *, since_ms: int) -> list[SmokeResult]:
    from botocore.exceptions import ClientError

    try:
        resp = logs.filter_log_events(
            logGroupName=f"/aws/lambda/{name}", filterPattern='"ImportModuleError"', startTime=since_ms, limit=5
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []  # no log group yet: the function never logged anything, so no import error either
        raise VerifyError(f"cannot read the logs of {name}: {exc}") from None
    events = resp.get("events", [])
    if not events:
        return []
    message = events[-1].get("message", "").strip()
    return [
        SmokeResult(
            case="logs",
            ok=False,
            summary="import error in recent logs",
            duration_ms=0.0,
            error=f"/aws/lambda/{name} logged {len(events)} ImportModuleError event(s) recently: {message[:500]}",
            where="remote",
        )
    ]

"""One transaction for every task that moves aliases (attach, deploy, rollback).

snapshot → apply → verify → commit, or restore. The snapshot is what each function served
and had on ``$LATEST`` before anything was written. While applying, every write is
*recorded before it is sent* (``code``, ``layers``, ``alias``), so a restore knows what this
run may have changed even when an interrupt lands in the middle of a call.

Restore runs on any ``BaseException``: a failed verify, an AWS error, Ctrl-C (SIGINT) and
SIGTERM (how CI cancels a job; a handler turns it into an exception on the same path). It is
compare-and-set: an alias goes back only while it still points at the version this run set,
and ``$LATEST``'s code and layers only while they are what this run put there; anything else
was moved by another writer and is left alone and reported. A second SIGINT/SIGTERM while
the calls in flight are waited for (from :meth:`Transaction.halt`) or during the restore is held
until the restore is done, so a nervous Ctrl-C cannot leave a mixed release. Each function
ends with an :class:`deploy.steps.Outcome` whose status is one of: unchanged, updated,
rolled_back, left (moved by someone else) or failed (the restore itself failed; the detail says
what to run). The restore reports each step it puts back as a typed
:class:`deploy.progress.Event` (``UNDOING``), and the restore as a whole as the ``RESTORE`` step.
"""

from __future__ import annotations

import base64
import hashlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from deploy.aws import calls, deployed
from deploy.aws.deployed import http_get
from deploy.aws.readiness import release
from deploy.aws.retry import RetryPolicy, call, error_code, error_message, wait_updated
from deploy.config import EnvConfig, Targets
from deploy.errors import AwsError, DeployError, Interrupted, Terminated
from deploy.lambda_facts import DIRECT_UPLOAD_LIMIT, function_key_for_code_sha
from deploy.progress import Event, Progress, State, plain
from deploy.signals import SigTerm, on_main_thread, raise_sigterm
from deploy.steps import Outcome, Status, Step

#: Where infra/terraform/bootstrap.tf puts the placeholder code every function starts with.
BOOTSTRAP_KEY = "lambda/bootstrap.zip"


class Stopped(Exception):
    """Raised in worker threads once the transaction is stopping: no new write starts."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    name: str
    alias_version: str
    alias_description: str | None
    code_sha256: str | None
    layers: tuple[str, ...]


@dataclass(kw_only=True)
class _Changes:
    code: str | None = None
    layers: tuple[str, ...] | None = None
    alias: str | None = None
    version: str | None = None  # the version staged for the alias (reported even if the alias never moved)


@dataclass(frozen=True, kw_only=True)
class TransactionReport:
    committed: bool
    functions: tuple[Outcome, ...]
    cause: str | None = None

    @property
    def restored(self) -> bool:
        """Nothing is left half-done by us: no restore failed."""
        return not any(f.status is Status.FAILED for f in self.functions)

    def summary(self) -> str:
        groups: dict[Status, list[str]] = {}
        for fn in self.functions:
            groups.setdefault(fn.status, []).append(fn.name + (f" ({fn.detail})" if fn.detail else ""))
        words = {
            Status.ROLLED_BACK: "rolled back",
            Status.LEFT: "left as another writer set them",
            Status.FAILED: "NOT restored",
            Status.UPDATED: "updated",
            Status.UNCHANGED: "unchanged",
        }
        return "; ".join(f"{words[k]}: {', '.join(groups[k])}" for k in words if k in groups)

    def to_json(self) -> dict[str, Any]:
        """The report's ``transaction`` entry (its schema calls the status ``outcome``)."""
        return {
            "committed": self.committed,
            "restored": self.restored,
            "cause": self.cause,
            "functions": [
                {
                    "name": f.name,
                    "outcome": f.status,
                    "old_version": f.old_version,
                    "new_version": f.new_version,
                    "detail": f.detail,
                }
                for f in self.functions
            ],
        }


@contextmanager
def _signals_held(emit: Progress) -> Iterator[None]:
    """While stopping and restoring, SIGINT/SIGTERM only print a line: the calls in flight must be waited
    for and the restore must finish to leave one generation."""
    if not on_main_thread():
        yield
        return

    def hold(signum: int, _frame: FrameType | None) -> None:
        detail = f"{signal.Signals(signum).name} received while restoring; finishing the restore first"
        emit(Event(function=None, step=Step.RESTORE, state=State.WAITING, detail=detail))

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Transaction:
    """Use as ``with Transaction(...) as txn:``; pass ``txn`` to the apply step as its recorder."""

    def __init__(
        self,
        env: EnvConfig,
        targets: Targets,
        *,
        progress: Progress = plain,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.env = env
        self.targets = targets
        self.emit = progress
        self.policy = policy or RetryPolicy()
        self.stop = threading.Event()
        self.snapshot: dict[str, Snapshot] = {}
        self.report: TransactionReport | None = None
        self._changes: dict[str, _Changes] = {}
        self._lock = threading.Lock()
        self._previous_sigterm: Any = None
        self._held: ExitStack | None = None
        self._lam: Any = None

    # ---------------------------------------------------------------- recording (any thread)

    def check(self) -> None:
        """Workers call this before each write: once stopping, nothing new is written."""
        if self.stop.is_set():
            raise Stopped("stopping: the transaction is being restored")

    def halt(self) -> None:
        """The main thread was interrupted: workers start no new write (see ``check``). From here to the end
        of the restore, SIGINT/SIGTERM are held: a second Ctrl-C must not cut short the wait for the calls
        in flight, or the restore would read an alias while its UpdateAlias is still on its way."""
        if self._held is None:
            self._held = ExitStack()
            self._held.enter_context(_signals_held(self.emit))  # before ``stop``: workers wake on it
        self.stop.set()

    def _entry(self, name: str) -> _Changes:
        return self._changes.setdefault(name, _Changes())

    def code(self, name: str, code_sha256: str) -> None:
        with self._lock:
            self._entry(name).code = code_sha256

    def layers(self, name: str, layers: tuple[str, ...]) -> None:
        with self._lock:
            self._entry(name).layers = tuple(layers)

    def version(self, name: str, version: str) -> None:
        with self._lock:
            self._entry(name).version = version

    def alias(self, name: str, version: str) -> None:
        with self._lock:
            entry = self._entry(name)
            entry.alias = version
            entry.version = version

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Transaction:
        self._lam = calls.client(self.env, "lambda", self.targets.region)
        names = [fn.name for fn in self.targets.functions]
        # Two reads per function: one at a time they were 5 s of a 50-function attach at 50 ms a
        # call, longer than the parallel attach itself. boto3 clients are safe to share across threads.
        with ThreadPoolExecutor(max_workers=max(1, min(self.env.max_workers, len(names) or 1))) as pool:
            states = list(pool.map(lambda name: deployed.read(self._lam, name, self.targets.alias), names))
        for fn, state in zip(self.targets.functions, states, strict=True):
            if state is None or state.alias is None:
                continue  # the apply step refuses missing functions/aliases before writing
            self.snapshot[fn.name] = Snapshot(
                name=fn.name,
                alias_version=str(state.alias_version),
                alias_description=state.alias.get("Description"),
                code_sha256=state.latest_code,
                layers=state.latest_layers,
            )
        if on_main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, raise_sigterm)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> Literal[False]:
        try:
            if exc is None:
                self.report = self._committed()
                return False
            self.halt()
            cause = _cause(exc)
            self.emit(
                Event(
                    function=None,
                    step=Step.RESTORE,
                    state=State.STARTED,
                    detail=f"{cause}: restoring what this run changed",
                )
            )
            self.report = self._restore(cause)
        finally:
            if self._held is not None:
                self._held.close()
                self._held = None
            if on_main_thread() and self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
        summary = self.report.summary()
        self.emit(Event(function=None, step=Step.RESTORE, state=State.DONE, detail=f"restore: {summary}"))
        if isinstance(exc, SigTerm):
            raise Terminated(f"terminated (SIGTERM); {summary}", hint="rerun to converge") from None
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(f"interrupted (SIGINT); {summary}", hint="rerun to converge") from None
        if isinstance(exc, DeployError):
            exc.message = f"{exc.message}\n  {summary}"
        return False

    # ---------------------------------------------------------------- outcomes

    def _committed(self) -> TransactionReport:
        out = []
        for name, snap in self.snapshot.items():
            change = self._changes.get(name)
            moved = change is not None and change.alias is not None and change.alias != snap.alias_version
            out.append(
                Outcome(
                    name=name,
                    status=Status.UPDATED if moved else Status.UNCHANGED,
                    old_version=snap.alias_version,
                    new_version=change.alias if moved and change else snap.alias_version,
                )
            )
        return TransactionReport(committed=True, functions=tuple(out))

    def _restore(self, cause: str) -> TransactionReport:
        out = []
        for name, snap in self.snapshot.items():
            change = self._changes.get(name)
            if change is None or (change.code is None and change.layers is None and change.alias is None):
                out.append(
                    Outcome(name=name, status=Status.UNCHANGED, old_version=snap.alias_version, new_version=None)
                )
                continue
            try:
                out.append(self._restore_one(snap, change))
            except (DeployError, ClientError, BotoCoreError) as err:
                text = str(err) if isinstance(err, DeployError) else error_message(err)
                out.append(
                    Outcome(
                        name=name,
                        status=Status.FAILED,
                        old_version=snap.alias_version,
                        new_version=change.version,
                        detail=f"restore failed: {text}; run `inv rollback --env {self.env.name}`",
                    )
                )
        return TransactionReport(committed=False, functions=tuple(out), cause=cause)

    def _undoing(self, name: str, step: Step, detail: str) -> None:
        self.emit(Event(function=name, step=step, state=State.UNDOING, detail=detail))

    def _restore_one(self, snap: Snapshot, change: _Changes) -> Outcome:
        lam, name, alias = self._lam, snap.name, self.targets.alias
        now = deployed.read(lam, name, alias)
        if now is None:
            raise AwsError(f"{name}: function disappeared during the transaction")
        done: list[str] = []
        left: list[str] = []
        current = serving = now.alias_version
        if change.alias is not None and current != snap.alias_version:
            if current == change.alias and now.alias is not None:
                self._undoing(name, Step.ALIAS, f"moving {alias} back {current} → {snap.alias_version}")
                self._write(
                    lam.update_alias,
                    what=name,
                    FunctionName=name,
                    Name=alias,
                    FunctionVersion=snap.alias_version,
                    **_revision(now.alias.get("RevisionId")),
                    Description=snap.alias_description or "",
                )
                done.append(f"{alias} {current} → {snap.alias_version}")
                serving = snap.alias_version
            else:
                left.append(f"{alias} is at {current}, set by another writer")
        if self.env.provisioned_concurrency and change.version not in (None, serving):
            # Warm environments on the version this run published and traffic left (or never reached)
            # bill until removed (deploy.aws.readiness); a failed removal is said, never fatal.
            problem = release(lam, name, str(change.version), policy=self.policy)
            if problem:
                left.append(f"provisioned concurrency on version {change.version} is still there ({problem})")
        revision = now.latest.get("RevisionId")
        if change.code is not None and now.latest_code != snap.code_sha256:
            if now.latest_code == change.code:
                revision = self._restore_code(snap, revision)
                done.append("$LATEST code")
            else:
                left.append("$LATEST code changed by another writer")
        if change.layers is not None and now.latest_layers != snap.layers:
            if now.latest_layers == change.layers:
                self._undoing(name, Step.LAYERS, "putting $LATEST's layers back")
                self._write(
                    lam.update_function_configuration,
                    what=name,
                    FunctionName=name,
                    Layers=list(snap.layers),
                    **_revision(revision),
                )
                wait_updated(lam, name, policy=self.policy)
                done.append("$LATEST layers")
            else:
                left.append("$LATEST layers changed by another writer")
        if left:
            status = Status.LEFT
            detail: str | None = "; ".join(left + ([f"restored {', '.join(done)}"] if done else []))
        elif done:
            status, detail = Status.ROLLED_BACK, ", ".join(done)
        else:
            status, detail = Status.UNCHANGED, None
        return Outcome(
            name=name, status=status, old_version=snap.alias_version, new_version=change.version, detail=detail
        )

    def _restore_code(self, snap: Snapshot, revision: str | None) -> str | None:
        """Put the snapshot's zip back on $LATEST: from our S3 copy (keyed by its sha256) or Terraform's
        bootstrap object, else from what Lambda serves for the old version (Code.Location; not on the emulator)."""
        lam, name = self._lam, snap.name
        assert snap.code_sha256 is not None
        s3 = calls.client(self.env, "s3", self.targets.region)
        key = _s3_copy(s3, self.targets.bucket, snap.code_sha256)
        source: dict[str, Any] = (
            {"S3Bucket": self.targets.bucket, "S3Key": key} if key else {"ZipFile": self._served_zip(snap)}
        )
        self._undoing(name, Step.CODE, "putting $LATEST's code back")
        self._write(lam.update_function_code, what=name, FunctionName=name, **source, **_revision(revision))
        return wait_updated(lam, name, policy=self.policy).get("RevisionId")

    def _served_zip(self, snap: Snapshot) -> bytes:
        if self.env.endpoint_url:
            raise AwsError(f"{snap.name}: the previous code is not in s3://{self.targets.bucket}; cannot put it back")
        url = self._lam.get_function(FunctionName=snap.name, Qualifier=snap.alias_version)["Code"].get("Location")
        try:
            data = http_get(str(url))
        except (OSError, ValueError) as exc:
            raise AwsError(f"{snap.name}: cannot download the previous code to put it back: {exc}") from None
        if _code_sha(data) != snap.code_sha256:
            raise AwsError(f"{snap.name}: the downloaded previous code does not match {snap.code_sha256}")
        if len(data) > DIRECT_UPLOAD_LIMIT:
            raise AwsError(f"{snap.name}: the previous code is over 50 MB and not in S3; cannot put it back")
        return data

    def _write(self, fn: Callable[..., Any], /, *, what: str, **kwargs: Any) -> Any:
        return call(fn, what=what, policy=self.policy, error=AwsError, **kwargs)


def _code_sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _s3_copy(s3: Any, bucket: str, code_sha256: str) -> str | None:
    """The key of a zip in ``bucket`` whose CodeSha256 is ``code_sha256``: ours (keyed by sha256) or
    Terraform's bootstrap placeholder (what a function runs before its first deploy)."""
    key = function_key_for_code_sha(code_sha256)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return key
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
    try:
        body = s3.get_object(Bucket=bucket, Key=BOOTSTRAP_KEY)["Body"].read()
    except ClientError:
        return None
    return BOOTSTRAP_KEY if _code_sha(body) == code_sha256 else None


def _revision(rev: str | None) -> Mapping[str, Any]:
    # moto omits RevisionId; real Lambda always returns one, and passing it makes the write compare-and-set.
    return {"RevisionId": rev} if rev else {}


def _cause(exc: BaseException) -> str:
    if isinstance(exc, SigTerm):
        return "SIGTERM"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    if isinstance(exc, DeployError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"

"""The one restore path: snapshot, apply, commit or restore (compare-and-set), on any BaseException.

Interrupts are real signals sent to this process (``os.kill``) from botocore event hooks at
the chosen phase, so they land wherever the main thread happens to be, as a Ctrl-C would.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

from deploy.artifact import Artifact
from deploy.aws import attach_apply, calls
from deploy.aws.attach import apply_attach, plan_attach
from deploy.aws.publish import publish_layer
from deploy.aws.rollback import rollback
from deploy.aws.transaction import Transaction
from deploy.config import EnvConfig, Targets
from deploy.errors import AttachError, Interrupted, Terminated, VerifyError
from deploy.progress import Event, State
from deploy.steps import Step
from tests.aws.conftest import alias_versions, client_error, zip_bytes

SIGNALS = {"SIGINT": (signal.SIGINT, Interrupted, 130), "SIGTERM": (signal.SIGTERM, Terminated, 143)}


@pytest.fixture
def layer_arn(env: EnvConfig, deployed: Targets, layer: Artifact) -> str:
    arn = publish_layer(env, deployed, layer).layer_version_arn
    assert arn
    return arn


def served(lam: Any, targets: Targets) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Per function: (alias version, code the alias serves, layers the alias serves)."""
    out = {}
    for fn in targets.functions:
        config = lam.get_function_configuration(FunctionName=fn.name, Qualifier="live")
        out[fn.name] = (
            lam.get_alias(FunctionName=fn.name, Name="live")["FunctionVersion"],
            config["CodeSha256"],
            tuple(x["Arn"] for x in config.get("Layers", [])),
        )
    return out


def latest(lam: Any, targets: Targets) -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {}
    for fn in targets.functions:
        config = lam.get_function_configuration(FunctionName=fn.name)
        out[fn.name] = (config["CodeSha256"], tuple(x["Arn"] for x in config.get("Layers", [])))
    return out


def assert_one_generation(lam: Any, targets: Targets, before: Any, before_latest: Any) -> None:
    """Every alias serves what it served before, and $LATEST is back where it was."""
    assert served(lam, targets) == before
    assert latest(lam, targets) == before_latest


def kill_on(nth: int, sig: signal.Signals) -> Callable[..., None]:
    seen = [0]

    def handler(**_: Any) -> None:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), sig)

    return handler


@pytest.mark.parametrize("signame", sorted(SIGNALS))
@pytest.mark.parametrize(
    ("phase", "operation", "nth"),
    [
        ("staging: second code update", "UpdateFunctionCode", 2),
        ("staging: third layer swap", "UpdateFunctionConfiguration", 3),
        ("staging: first publish", "PublishVersion", 1),
        ("aliases: third move", "UpdateAlias", 3),
    ],
)
def test_signal_during_attach_leaves_one_generation(
    env: EnvConfig,
    deployed: Targets,
    code: Artifact,
    layer_arn: str,
    lam: Any,
    inject: Any,
    signame: str,
    phase: str,
    operation: str,
    nth: int,
) -> None:
    sig, error, exit_code = SIGNALS[signame]
    before, before_latest = served(lam, deployed), latest(lam, deployed)
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    inject("lambda", operation, kill_on(nth, sig))
    previous = signal.getsignal(signal.SIGTERM)
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(error) as caught, txn:
        apply_attach(env, deployed, plan, function=code, max_workers=2, record=txn)
    assert caught.value.exit_code == exit_code
    assert signame in str(caught.value) and "rolled back" in str(caught.value)
    assert txn.report is not None and txn.report.restored and not txn.report.committed
    assert_one_generation(lam, deployed, before, before_latest)
    assert signal.getsignal(signal.SIGTERM) is previous  # the transaction put the old handler back


def test_signal_during_verify_restores_everything(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    before, before_latest = served(lam, deployed), latest(lam, deployed)
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(Interrupted, match="rolled back"), txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        assert {v for v, _c, _l in served(lam, deployed).values()} == {"2"}
        os.kill(os.getpid(), signal.SIGINT)  # verify is running
        signal.pause()  # never reached: the handler raises first
    assert_one_generation(lam, deployed, before, before_latest)


def test_failed_verify_restores_aliases_and_latest(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    before, before_latest = served(lam, deployed), latest(lam, deployed)
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(VerifyError) as caught, txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        raise VerifyError("api: import failed")
    assert "api: import failed" in str(caught.value) and "rolled back: " in str(caught.value)
    assert txn.report is not None
    assert {f.status for f in txn.report.functions} == {"rolled_back"}
    assert_one_generation(lam, deployed, before, before_latest)
    # The next attach converges from there, as if the failed one never ran.
    with Transaction(env, deployed, progress=lambda _e: None) as again:
        apply_attach(
            env,
            deployed,
            plan_attach(env, deployed, function=code, layer_version_arn=layer_arn),
            function=code,
            record=again,
        )
    assert again.report is not None
    assert {f.status for f in again.report.functions} == {"updated"}


def test_restore_leaves_an_alias_another_writer_moved(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    """Compare-and-set: a concurrent deploy's alias move is not undone by our failed one."""
    victim = deployed.functions[1].name
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(VerifyError), txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        lam.update_function_code(FunctionName=victim, ZipFile=zip_bytes("theirs = 1"))
        theirs = lam.publish_version(FunctionName=victim, Description="another writer")["Version"]
        assert theirs == "3"
        lam.update_alias(FunctionName=victim, Name="live", FunctionVersion="1")  # they roll back to 1 ...
        lam.update_alias(FunctionName=victim, Name="live", FunctionVersion=theirs)  # ... then ship theirs
        raise VerifyError("verify failed")
    assert txn.report is not None
    outcome = {f.name: f for f in txn.report.functions}
    assert outcome[victim].status == "left" and f"live is at {theirs}" in str(outcome[victim].detail)
    assert lam.get_alias(FunctionName=victim, Name="live")["FunctionVersion"] == theirs
    others = {n: v for n, v in alias_versions(lam, deployed).items() if n != victim}
    assert others == {n: "1" for n in others}
    assert {outcome[n].status for n in others} == {"rolled_back"}
    assert "left as another writer set them: " + victim in txn.report.summary()


def test_restore_leaves_latest_code_another_writer_changed(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, tmp_path: Any
) -> None:
    victim = deployed.functions[0].name
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(VerifyError), txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        lam.update_function_code(FunctionName=victim, ZipFile=zip_bytes("theirs = 1"))
        raise VerifyError("verify failed")
    theirs = lam.get_function_configuration(FunctionName=victim)["CodeSha256"]
    assert theirs != code.code_sha256
    assert txn.report is not None
    change = {f.name: f for f in txn.report.functions}[victim]
    assert change.status == "left" and "$LATEST code changed by another writer" in str(change.detail)
    assert lam.get_alias(FunctionName=victim, Name="live")["FunctionVersion"] == "1"


def test_an_error_during_restore_is_reported_not_hidden(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    victim = deployed.functions[0].name
    restoring = [False]

    def refuse_restore(params: dict[str, Any], **_: Any) -> None:
        if restoring[0] and params["FunctionName"] == victim:
            raise client_error("AccessDeniedException", "UpdateAlias", "denied")

    inject("lambda", "UpdateAlias", refuse_restore)
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(AttachError) as caught, txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        restoring[0] = True
        raise AttachError("something after the moves failed")
    assert txn.report is not None and not txn.report.restored
    assert f"NOT restored: {victim}" in str(caught.value) and "inv rollback --env test" in str(caught.value)
    others = {n: v for n, v in alias_versions(lam, deployed).items() if n != victim}
    assert set(others.values()) == {"1"}


def test_rollback_failing_half_way_puts_moved_aliases_back(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    with Transaction(env, deployed, progress=lambda _e: None) as txn:
        apply_attach(
            env,
            deployed,
            plan_attach(env, deployed, function=code, layer_version_arn=layer_arn),
            function=code,
            record=txn,
        )
    third = deployed.functions[2].name

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["FunctionName"] == third and params.get("FunctionVersion") == "1":
            raise client_error("ServiceException", "UpdateAlias", "boom")

    inject("lambda", "UpdateAlias", refuse)
    with pytest.raises(Exception, match="boom"), Transaction(env, deployed, progress=lambda _e: None) as rb:
        rollback(env, deployed, record=rb)
    assert set(alias_versions(lam, deployed).values()) == {"2"}


def test_no_change_commits_without_writes(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any
) -> None:
    with Transaction(env, deployed, progress=lambda _e: None) as txn:
        apply_attach(
            env,
            deployed,
            plan_attach(env, deployed, function=code, layer_version_arn=layer_arn),
            function=code,
            record=txn,
        )
    with calls.count_writes() as writes, Transaction(env, deployed, progress=lambda _e: None) as again:
        apply_attach(
            env,
            deployed,
            plan_attach(env, deployed, function=code, layer_version_arn=layer_arn),
            function=code,
            record=again,
        )
    assert writes.count == 0
    assert again.report is not None and {f.status for f in again.report.functions} == {"unchanged"}


def test_a_second_ctrl_c_during_the_restore_waits_for_it(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    before, before_latest = served(lam, deployed), latest(lam, deployed)
    restoring = [False]

    def impatient(**_: Any) -> None:
        if restoring[0]:
            os.kill(os.getpid(), signal.SIGINT)

    inject("lambda", "UpdateAlias", impatient)
    said: list[Event] = []
    txn = Transaction(env, deployed, progress=said.append)
    with pytest.raises(Interrupted), txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        restoring[0] = True
        os.kill(os.getpid(), signal.SIGINT)
        signal.pause()
    assert any("SIGINT received while restoring; finishing the restore first" in e.line() for e in said)
    assert_one_generation(lam, deployed, before, before_latest)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_restore_reports_each_step_it_puts_back_as_a_typed_event(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str
) -> None:
    events: list[Event] = []
    txn = Transaction(env, deployed, progress=events.append)
    with pytest.raises(VerifyError), txn:
        plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
        apply_attach(env, deployed, plan, function=code, record=txn)
        raise VerifyError("verify failed")
    run = [(e.step, e.state) for e in events if e.function is None]
    assert run == [(Step.RESTORE, State.STARTED), (Step.RESTORE, State.DONE)]
    assert events[-1].detail.startswith("restore: rolled back: ")
    undone = {(e.function, e.step) for e in events if e.state is State.UNDOING}
    assert undone == {(fn.name, step) for fn in deployed.functions for step in (Step.ALIAS, Step.CODE, Step.LAYERS)}
    first = deployed.functions[0].name
    assert Event(function=first, step=Step.ALIAS, state=State.UNDOING, detail="moving live back 2 → 1") in events


@pytest.mark.parametrize(("pool", "first_write"), [(0, "UpdateFunctionCode"), (1, "UpdateAlias")])
def test_an_interrupt_while_workers_are_handed_out_stops_every_worker(
    env: EnvConfig,
    deployed: Targets,
    code: Artifact,
    layer_arn: str,
    lam: Any,
    inject: Any,
    monkeypatch: pytest.MonkeyPatch,
    pool: int,
    first_write: str,
) -> None:
    """Ctrl-C while the main thread is still submitting (staging: pool 0, alias moves: pool 1) lands
    outside the wait for results: no worker may write after it, the ones already handed out included.
    (In CPython it can even land inside ``Thread.start``, before the pool tracks the thread, so the
    pool's shutdown does not wait for it and the restore raced its in-flight UpdateAlias.)"""
    before, before_latest = served(lam, deployed), latest(lam, deployed)
    interrupted = threading.Event()
    late: list[str] = []
    pools = [0]

    class InterruptedWhileSubmitting(attach_apply.ThreadPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.index, pools[0], self.submitted = pools[0], pools[0] + 1, 0

        def submit(self, *args: Any, **kwargs: Any) -> Any:
            self.submitted += 1
            if self.index == pool and self.submitted == 2:
                interrupted.set()
                os.kill(os.getpid(), signal.SIGINT)  # raises here, in the main thread
            return super().submit(*args, **kwargs)

    def worker_write(params: dict[str, Any], **_: Any) -> None:
        if threading.current_thread() is not threading.main_thread():  # not the restore's writes
            interrupted.wait()  # the first worker writes only once the interrupt has landed
            late.append(params["FunctionName"])

    monkeypatch.setattr(attach_apply, "ThreadPoolExecutor", InterruptedWhileSubmitting)
    inject("lambda", first_write, worker_write)
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    txn = Transaction(env, deployed, progress=lambda _e: None)
    with pytest.raises(Interrupted), txn:
        apply_attach(env, deployed, plan, function=code, record=txn)
    assert late == []
    assert txn.report is not None and txn.report.restored
    assert_one_generation(lam, deployed, before, before_latest)


def test_a_second_signal_while_waiting_for_calls_in_flight_is_held(
    env: EnvConfig, deployed: Targets, code: Artifact, layer_arn: str, lam: Any, inject: Any
) -> None:
    """Ctrl-C lands while two alias moves are in flight; while the transaction waits for them, a
    SIGTERM arrives. It is held (a line says so) as during the restore: the wait is not cut short,
    the run ends as the first signal said (SIGINT, 130), and both moves are put back."""
    before, before_latest = served(lam, deployed), latest(lam, deployed)
    previous = signal.getsignal(signal.SIGTERM)
    said: list[Event] = []
    txn = Transaction(env, deployed, progress=said.append)
    second_in_flight = threading.Event()
    arrivals = [0]
    lock = threading.Lock()

    def in_flight(**_: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            return  # the restore's own moves
        with lock:
            arrivals[0] += 1
            arrival = arrivals[0]
        if arrival == 1:
            second_in_flight.wait()  # two moves are on their way: interrupt now
            os.kill(os.getpid(), signal.SIGINT)
        elif arrival == 2:
            second_in_flight.set()
            txn.stop.wait()  # the main thread was interrupted and is waiting for this call
            os.kill(os.getpid(), signal.SIGTERM)

    inject("lambda", "UpdateAlias", in_flight)
    plan = plan_attach(env, deployed, function=code, layer_version_arn=layer_arn)
    with pytest.raises(Interrupted) as caught, txn:
        apply_attach(env, deployed, plan, function=code, record=txn)
    assert caught.value.exit_code == 130
    assert any("SIGTERM received while" in e.line() and e.state is State.WAITING for e in said)
    assert txn.report is not None and txn.report.restored
    assert_one_generation(lam, deployed, before, before_latest)
    assert signal.getsignal(signal.SIGTERM) is previous
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

"""The deploy lock's lease and its conditional writes: lost answers, killed holders, late releases,
takeovers, clocks far ahead, objects that are not locks, and the fence that stops a holder that lost it.

moto enforces If-None-Match and If-Match on put_object and If-Match on delete_object, in-process and
over HTTP, so races here are real refusals; a lost answer is injected below botocore's retry loop
(``before-send``), where botocore itself retries it into the 412 real S3 answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError

from deploy.aws import calls, lock_record
from deploy.aws import lock as env_lock
from deploy.config import ROOT, DeployLockSettings, EnvConfig, StateSettings
from deploy.emulator import EmulatorState
from deploy.errors import DeployLockError
from tests.aws.conftest import FakeClock, client_error

STATE = StateSettings(bucket="lock-state", key="app/terraform.tfstate")


def make(env: EnvConfig, clock: FakeClock, said: list[str] | None = None, **kw: Any) -> env_lock.EnvLock:
    info = env_lock.new_info(env, kw.pop("command", "inv deploy"), environ={})
    if "lease" in kw:
        kw.setdefault("heartbeat", kw["lease"] / 4)
    return env_lock.EnvLock(
        s3=kw.pop("s3", None) or calls.client(env, "s3"),
        where=env_lock.location(env),
        info=dataclasses.replace(info, **kw.pop("info", {})),
        clock=clock.clock,
        sleep=kw.pop("sleep", clock.sleep),
        say=(said if said is not None else []).append,
        **kw,
    )


def holder(env: EnvConfig) -> env_lock.LockInfo | None:
    return env_lock.read(calls.client(env, "s3"), env_lock.location(env))


def put_raw(env: EnvConfig, body: bytes) -> str:
    where = env_lock.location(env)
    return str(calls.client(env, "s3").put_object(Bucket=where.bucket, Key=where.key, Body=body)["ETag"])


def foreign_lock(env: EnvConfig, **fields: Any) -> bytes:
    """A lock another runner wrote, as JSON."""
    info = dataclasses.replace(env_lock.new_info(env, "inv attach", environ={}), **{"host": "ci-runner-7", **fields})
    return json.dumps(dataclasses.asdict(info)).encode()


def lose_first_answer(client: Any, operation: str, when: Callable[[Any], bool] = lambda _r: True) -> list[str]:
    """The first matching request reaches S3 but its answer never comes back: botocore retries it."""
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        if not when(request):
            return
        sent.append(request.url)
        if len(sent) == 1:
            client._endpoint.http_session.send(request)  # S3 does the write...
            raise ConnectionClosedError(endpoint_url=request.url)  # ...and the answer is lost

    client.meta.events.register(f"before-send.s3.{operation}", before_send)
    return sent


@pytest.fixture
def server(moto_server: EmulatorState) -> EnvConfig:
    env = EnvConfig(name="test", region="us-east-1", endpoint_url=moto_server.url, state=STATE)
    calls.client(env, "s3").create_bucket(Bucket=STATE.bucket)
    return env


@pytest.fixture
def mocked(env: EnvConfig, s3: Any) -> EnvConfig:
    s3.create_bucket(Bucket=STATE.bucket)
    return dataclasses.replace(env, state=STATE)


# -- conditional writes against the real server -----------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_our_lock_not_someone_elses(server: EnvConfig) -> None:
    """botocore retries the unanswered create into a 412; the object holds our lock id, so it is ours."""
    clock, said = FakeClock(), []
    lock = make(server, clock, said, timeout=0)
    sent = lose_first_answer(lock.s3, "PutObject")
    lock.acquire()
    assert len(sent) == 2  # the lost attempt and botocore's retry, refused by S3
    assert clock.sleeps == [] and said == []  # no waiting on ourselves
    where = env_lock.location(server)
    assert lock.etag == calls.client(server, "s3").head_object(Bucket=where.bucket, Key=where.key)["ETag"]
    lock.release()
    assert holder(server) is None


def test_a_renewal_whose_answer_was_lost_keeps_the_lock(server: EnvConfig) -> None:
    clock = FakeClock()
    lock = make(server, clock)
    lock.acquire()
    before = lock.etag
    sent = lose_first_answer(lock.s3, "PutObject", when=lambda r: "If-Match" in r.headers)
    assert lock.renew() and len(sent) == 2
    assert lock.lost is None and lock.etag != before
    info = holder(server)
    assert info is not None and info.renewals == 1
    lock.release()
    assert holder(server) is None


def test_a_release_whose_answer_was_lost_is_still_a_clean_release(server: EnvConfig) -> None:
    """botocore retries the unanswered delete; S3 answers 404 to the retry: the lock is gone, as intended."""
    with env_lock.held(server, "inv deploy", lease=60, heartbeat=15, say=lambda _m: None) as lock:
        sent = lose_first_answer(lock.s3, "DeleteObject")
    assert len(sent) == 2 and lock.lost is None and holder(server) is None


def test_a_late_release_after_a_force_unlock_leaves_the_new_holders_lock(server: EnvConfig) -> None:
    """The old holder's delete is sent after the force-unlock and the next acquire: If-Match refuses it."""
    said: list[str] = []
    mine = make(server, FakeClock(), said)
    mine.acquire()
    theirs = make(server, FakeClock(), command="inv rollback")

    done: list[bool] = []

    def meanwhile(**_: Any) -> None:
        # Once, on mine's delete: the library shares one client per endpoint in a process, so the
        # force-unlock's own DeleteObject passes through here too.
        if not done:
            done.append(True)
            env_lock.force_unlock(server, mine.info.lock_id)
            theirs.acquire()

    mine.s3.meta.events.register("before-call.s3.DeleteObject", meanwhile)
    mine.release()
    info = holder(server)
    assert info is not None and info.lock_id == theirs.info.lock_id
    assert mine.lost is not None and any("left the deploy lock" in s and "in place" in s for s in said)


def test_two_runners_taking_over_one_stale_lock_cannot_both_win(server: EnvConfig) -> None:
    """B's takeover is sent after A's: its If-Match names the stale ETag, so S3 refuses it and B waits."""
    stale_pid = 2**22 + 1
    put_raw(server, foreign_lock(server, host=socket.gethostname(), machine=lock_record.machine_id(), pid=stale_pid))
    alive: Callable[[int], bool] = lambda pid: pid != stale_pid  # noqa: E731
    a_said: list[str] = []
    a = make(server, FakeClock(), a_said, alive=alive, timeout=0)
    b = make(server, FakeClock(), alive=alive, timeout=0)
    race = {"done": False}

    def a_takes_over_first(params: dict[str, Any], **_: Any) -> None:
        if "IfMatch" in params and not race["done"]:
            race["done"] = True
            a.acquire()

    b.s3.meta.events.register("provide-client-params.s3.PutObject", a_takes_over_first)
    with pytest.raises(DeployLockError, match=f"locked by .*{a.info.lock_id}"):
        b.acquire()
    info = holder(server)
    assert race["done"] and info is not None and info.lock_id == a.info.lock_id
    assert any(f"pid {stale_pid}" in s and "on this host is gone" in s for s in a_said)


# -- a killed holder -------------------------------------------------------------------------------------

_HOLDER = """
import sys
from deploy.aws import lock
from deploy.config import EnvConfig, StateSettings
env = EnvConfig(name="test", region="us-east-1", endpoint_url=sys.argv[1],
                state=StateSettings(bucket="lock-state", key="app/terraform.tfstate"))
with lock.held(env, "inv deploy", lease=30, heartbeat=10, say=lambda _m: None) as held:
    print(held.info.lock_id, flush=True)
    sys.stdin.read()  # holds the lock until killed
"""


@pytest.fixture
def killed_holder(server: EnvConfig) -> Iterator[tuple[int, str]]:
    """A real process that took the lock (30 s lease) and was then SIGKILLed: (its pid, its lock id)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(server.endpoint_url)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lock_id = proc.stdout.readline().strip()
        info = holder(server)
        assert info is not None and info.lock_id == lock_id and info.pid == proc.pid
        os.kill(proc.pid, signal.SIGKILL)  # no finally, no release
        proc.wait()
        yield proc.pid, lock_id
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_after_a_sigkill_the_next_deploy_takes_over_once_the_lease_ran_out(
    server: EnvConfig, killed_holder: tuple[int, str]
) -> None:
    pid, lock_id = killed_holder
    elsewhere = {"host": "another-runner", "machine": None}  # cannot see the dead pid: only the lease tells
    early = FakeClock()
    with pytest.raises(DeployLockError, match=f"locked by .*pid {pid}"):
        make(server, early, info=elsewhere, lease=30, timeout=25).acquire()  # before the lease: refused
    assert sum(early.sleeps) == 25
    clock, said = FakeClock(), []
    waiter = make(server, clock, said, info=elsewhere, lease=30, timeout=300)
    waiter.acquire()  # no person involved
    assert sum(clock.sleeps) == 30  # polled every 5 s until the ETag had stood still for the lease
    info = holder(server)
    assert info is not None and info.lock_id == waiter.info.lock_id
    notice = [s for s in said if s.startswith("took over the deploy lock")]
    assert len(notice) == 1 and f"pid {pid}" in notice[0] and lock_id in notice[0]
    assert "not renewed for 30 s, its lease is 30 s" in notice[0]


def test_a_dead_holder_on_this_host_is_stale_at_once(server: EnvConfig, killed_holder: tuple[int, str]) -> None:
    pid, lock_id = killed_holder
    clock, said = FakeClock(), []
    waiter = make(server, clock, said, lease=30, timeout=0)
    waiter.acquire()
    assert clock.sleeps == []
    assert len(said) == 1 and said[0].startswith(f"took over the deploy lock {waiter.where} from ")
    assert (
        f"pid {pid}" in said[0] and lock_id in said[0] and said[0].endswith(f"its process {pid} on this host is gone")
    )
    info = holder(server)
    assert info is not None and info.lock_id == waiter.info.lock_id


# -- the lease, on a fake clock --------------------------------------------------------------------------


def test_a_renewing_holder_is_never_taken_over(mocked: EnvConfig) -> None:
    clock = FakeClock()
    live = make(mocked, clock, lease=30, heartbeat=10)
    live.acquire()

    def sleep_while_the_holder_beats(seconds: float) -> None:
        clock.sleep(seconds)
        assert live.renew()

    waiter = make(mocked, clock, lease=30, timeout=120, sleep=sleep_while_the_holder_beats, info={"host": "other"})
    with pytest.raises(DeployLockError, match="gave up after 120 s"):
        waiter.acquire()
    info = holder(mocked)
    assert info is not None and info.lock_id == live.info.lock_id and info.renewals == 24
    live.check("PutObject")  # renewed all along: still allowed to write


def test_a_lease_from_a_clock_far_ahead_is_capped_by_ours(mocked: EnvConfig) -> None:
    """The object claims a year-long lease renewed in 2999; we trust only how long its ETag stood still."""
    put_raw(mocked, foreign_lock(mocked, lease_seconds=365 * 86400, renewed_at="2999-01-01T00:00:00+00:00"))
    clock, said = FakeClock(), []
    make(mocked, clock, said, lease=60, timeout=300).acquire()
    assert sum(clock.sleeps) == 60
    assert "its lease is 60 s" in said[-1]


def test_a_lock_whose_lease_ran_out_long_ago_on_s3s_clock_is_taken_at_once(mocked: EnvConfig) -> None:
    put_raw(mocked, foreign_lock(mocked, lease_seconds=180))
    clock, said = FakeClock(), []
    lock = make(mocked, clock, said, lease=180, timeout=0)

    def an_hour_old(parsed: dict[str, Any], **_: Any) -> None:  # what S3 sends: Date now, LastModified then
        now = datetime.now(UTC).replace(microsecond=0)
        parsed["ResponseMetadata"]["HTTPHeaders"]["date"] = format_datetime(now, usegmt=True)
        parsed["LastModified"] = now - timedelta(hours=1)

    lock.s3.meta.events.register("after-call.s3.GetObject", an_hour_old)
    lock.acquire()
    assert clock.sleeps == [] and "not renewed for 3600 s" in said[-1] and "ci-runner-7" in said[-1]


def test_a_lock_without_a_lease_is_left_to_a_person(mocked: EnvConfig) -> None:
    """Written by the version before leases: it never renews, so age says nothing about it."""
    put_raw(mocked, foreign_lock(mocked, lease_seconds=None))
    clock = FakeClock()
    with pytest.raises(DeployLockError, match=r"gave up after 600 s[\s\S]*inv unlock --env test --force"):
        make(mocked, clock, lease=30, timeout=600).acquire()


def test_a_dead_pid_on_another_machine_is_not_judged_here(mocked: EnvConfig) -> None:
    """Same hostname, another boot or pid namespace (two containers): the pid means nothing here."""
    put_raw(mocked, foreign_lock(mocked, host=socket.gethostname(), machine="other-boot pid:[1]"))
    with pytest.raises(DeployLockError, match="locked by"):
        make(mocked, FakeClock(), alive=lambda _pid: False, timeout=10).acquire()


def test_an_injected_409_conflict_on_takeover_is_a_lost_race(mocked: EnvConfig, inject: Any) -> None:
    """Real S3 may answer 409 ConditionalRequestConflict to racing conditional writes; moto never does."""
    stale = put_raw(mocked, foreign_lock(mocked, lease_seconds=30))

    takeovers: list[str] = []

    def conflict(params: dict[str, Any], **_: Any) -> None:
        if params.get("IfMatch") == stale:
            takeovers.append(stale)
            assert len(takeovers) <= 3, "a refused takeover must wait a poll, not spin"
            raise client_error("ConditionalRequestConflict", "PutObject")

    inject("s3", "PutObject", conflict)
    clock = FakeClock()
    with pytest.raises(DeployLockError, match=r"locked by .*ci-runner-7"):
        make(mocked, clock, lease=30, timeout=40).acquire()
    assert sum(clock.sleeps) == 40 and len(takeovers) == 3  # tried at 30, 35 and 40 s, refused each time


# -- objects that are not locks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json {",
        b"[1, 2]",
        b'{"lock_id": "x"}',
        foreign_lock(EnvConfig(name="t", region="r"), pid="12"),
        foreign_lock(EnvConfig(name="t", region="r"), pid=0),  # os.kill(0, 0) would signal our own group
        foreign_lock(EnvConfig(name="t", region="r"), pid=2**40),  # os.kill would raise OverflowError
        foreign_lock(EnvConfig(name="t", region="r"), lease_seconds=float("nan")),  # json writes NaN
    ],
    ids=["not-json", "a-list", "missing-fields", "pid-a-string", "pid-zero", "pid-huge", "lease-nan"],
)
def test_an_object_that_is_not_a_lock_is_a_clear_error_and_unlock_removes_it(mocked: EnvConfig, body: bytes) -> None:
    etag = put_raw(mocked, body).strip('"')
    where = env_lock.location(mocked)
    with pytest.raises(DeployLockError) as err, env_lock.held(mocked, "inv deploy", timeout=0, say=lambda _m: None):
        raise AssertionError("must not run")
    assert f"deploy lock {where} is not a lock this tool wrote" in err.value.message
    assert err.value.hint is not None and f"inv unlock --env test --force {etag}" in err.value.hint
    with pytest.raises(DeployLockError, match="not a lock this tool wrote; nothing removed") as refused:
        env_lock.force_unlock(mocked, "0" * 32)
    assert etag not in str(refused.value)
    assert env_lock.force_unlock(mocked, etag) is None
    with env_lock.held(mocked, "inv deploy", say=lambda _m: None) as lock:
        info = holder(mocked)
        assert info is not None and info.lock_id == lock.info.lock_id


def test_a_force_unlock_deletes_only_the_object_it_read(mocked: EnvConfig, inject: Any) -> None:
    """The holder renews between unlock's read and its delete: the delete is refused, the lock stays."""
    live = make(mocked, FakeClock())
    live.acquire()
    inject("s3", "DeleteObject", lambda **_: live.renew() and None)
    with pytest.raises(DeployLockError, match="changed while unlocking"):
        env_lock.force_unlock(mocked, live.info.lock_id)
    info = holder(mocked)
    assert info is not None and info.lock_id == live.info.lock_id and info.renewals == 1


# -- the heartbeat thread and the fence ------------------------------------------------------------------


def heartbeats(inject: Any, count: int) -> threading.Event:
    """Set once ``count`` renewals were sent."""
    done, sent = threading.Event(), []

    def renewal(params: dict[str, Any], **_: Any) -> None:
        if "IfMatch" in params:
            sent.append(1)
            if len(sent) >= count:
                done.set()

    inject("s3", "PutObject", renewal)
    return done


@pytest.mark.parametrize("exc", [None, RuntimeError("boom"), KeyboardInterrupt()], ids=["ok", "error", "ctrl-c"])
def test_the_heartbeat_renews_while_held_and_stops_on_every_exit(
    mocked: EnvConfig, inject: Any, exc: BaseException | None
) -> None:
    renewed = heartbeats(inject, 3)
    with (
        pytest.raises(type(exc)) if exc else contextlib.nullcontext(),
        env_lock.held(mocked, "inv deploy", lease=60, heartbeat=0.001, say=lambda _m: None) as lock,
    ):
        assert renewed.wait(timeout=30)
        if exc is not None:
            raise exc
    assert lock.lost is None and holder(mocked) is None
    assert not [t for t in threading.enumerate() if t.name == "deploy-lock-test"]


def test_a_holder_whose_lock_was_replaced_stops_before_its_next_write(mocked: EnvConfig, s3: Any) -> None:
    where = env_lock.location(mocked)
    with (
        pytest.raises(DeployLockError, match=r"lost its deploy lock .*stopped before PutObject"),
        env_lock.held(mocked, "inv deploy", lease=7200, heartbeat=3600, say=lambda _m: None) as lock,
    ):
        env_lock.force_unlock(mocked, lock.info.lock_id)
        theirs = make(mocked, FakeClock(), command="inv rollback")
        theirs.acquire()
        assert not lock.renew() and lock.lost is not None  # what the heartbeat thread finds
        client = calls.client(mocked, "s3")
        client.get_object(Bucket=where.bucket, Key=where.key)  # reading is still fine
        client.put_object(Bucket=where.bucket, Key="lambda/written-after-losing-the-lock", Body=b"x")
    assert s3.list_objects_v2(Bucket=where.bucket, Prefix="lambda/").get("KeyCount") == 0
    info = holder(mocked)
    assert info is not None and info.lock_id == theirs.info.lock_id


def test_a_lost_lock_fails_the_run_even_without_a_later_write(mocked: EnvConfig) -> None:
    with (
        pytest.raises(DeployLockError, match=r"lost its deploy lock .* before it finished"),
        env_lock.held(mocked, "inv deploy", lease=7200, heartbeat=3600, say=lambda _m: None) as lock,
    ):
        env_lock.force_unlock(mocked, lock.info.lock_id)
        make(mocked, FakeClock()).acquire()
    assert holder(mocked) is not None  # the other run's lock


def test_a_holder_that_could_not_renew_stops_writing_before_its_lease_can_run_out(
    mocked: EnvConfig, inject: Any
) -> None:
    """Renewals fail (throttled, network): others may take over at 60 s, so writes stop at 60 - 10."""
    clock, said = FakeClock(), []
    lock = make(mocked, clock, said, lease=60, heartbeat=10)
    lock.acquire()
    inject("s3", "PutObject", lambda **_: (_ for _ in ()).throw(client_error("SlowDown", "PutObject")))
    lock.s3 = calls.client(mocked, "s3")  # one the fault reaches
    clock.now += 49.0
    assert not lock.renew() and lock.lost is None  # a failed renewal alone is not a loss
    lock.check("UpdateAlias")  # 49 s without renewal: still ours
    clock.now += 1.0
    with pytest.raises(DeployLockError, match=r"not renewed for 50 s of a 60 s lease.*stopped before UpdateAlias"):
        lock.check("UpdateAlias")
    assert any("could not renew the deploy lock" in s and "SlowDown" in s for s in said)


def test_held_takes_the_lease_from_the_environments_settings(mocked: EnvConfig) -> None:
    env = dataclasses.replace(mocked, deploy_lock=DeployLockSettings(lease_seconds=40, heartbeat_seconds=10))
    with env_lock.held(env, "inv deploy", say=lambda _m: None) as lock:
        info = holder(env)
        assert (lock.lease, lock.heartbeat) == (40, 10)
        assert info is not None and info.lease_seconds == 40  # what waiters read (capped by their own)

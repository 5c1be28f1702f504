"""The local emulator over real HTTP: start, serve S3 + Lambda + IAM, stop; and its failure modes."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import boto3
import pytest

from deploy import emulator
from deploy.config import EmulatorSettings
from deploy.errors import EmulatorError
from tests.conftest import free_port


def _client(service: str, url: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def test_serves_s3_lambda_iam_over_http(moto_server: emulator.EmulatorState) -> None:
    url = moto_server.url
    s3 = _client("s3", url)
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="lambda/x.zip", Body=_zip())
    iam = _client("iam", url)
    role = iam.create_role(
        RoleName="fn",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    lam = _client("lambda", url)
    fn = lam.create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"S3Bucket": "artifacts", "S3Key": "lambda/x.zip"},
    )
    assert fn["State"] in ("Active", "Pending")
    # Docker-less mode was configured before the function existed.
    with urllib.request.urlopen(f"{url}/moto-api/config", timeout=5) as resp:
        config = json.loads(resp.read())
    assert config["lambda"]["use_docker"] is False


def test_second_up_reuses_the_healthy_server(moto_server: emulator.EmulatorState, tmp_path: Path) -> None:
    settings = EmulatorSettings(port=int(moto_server.url.rsplit(":", 1)[1]))
    again = emulator.up(settings, moto_server.pidfile.parent)
    assert again.reused
    assert again.pid == moto_server.pid


def test_down_stops_exactly_that_process(tmp_path: Path) -> None:
    settings = EmulatorSettings(port=free_port())
    state = emulator.up(settings, tmp_path)
    assert emulator.is_moto(state.url)
    message = emulator.down(settings, tmp_path)
    assert f"pid {state.pid}" in message
    assert not emulator.port_open(settings.host, settings.port)
    assert not state.pidfile.exists()


def test_after_sigkill_up_clears_the_pidfile_and_starts_a_fresh_server(tmp_path: Path) -> None:
    settings = EmulatorSettings(port=free_port())
    first = emulator.up(settings, tmp_path)
    _client("s3", first.url).create_bucket(Bucket="before-the-kill")
    os.kill(first.pid, signal.SIGKILL)
    os.waitpid(first.pid, 0)  # our child in this test: reap it, so the pid is really gone
    assert emulator.inspect(settings, tmp_path).state == "gone"
    assert f"pid {first.pid} is gone" in emulator.status(settings, tmp_path)
    said: list[str] = []
    try:
        second = emulator.up(settings, tmp_path, notify=said.append)
        assert not second.reused
        assert second.pid != first.pid
        assert emulator.status(settings, tmp_path) == f"running: pid {second.pid} on {second.url}"
        assert _client("s3", second.url).list_buckets()["Buckets"] == []  # a fresh server: empty
        assert said == [f"cleared stale pidfile {first.pidfile}: pid {first.pid} is gone" + GONE_TAIL]
    finally:
        emulator.down(settings, tmp_path)


def test_a_killed_server_not_yet_reaped_reads_as_gone(tmp_path: Path) -> None:
    """Until its parent reaps it, a SIGKILLed server is a zombie: still signal-able, no command line."""
    settings = EmulatorSettings(port=free_port())
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        zombie.kill()
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            os.sched_yield()  # the kill is asynchronous; wait for the state, not for time
        emulator.pidfile_path(tmp_path, settings).write_text(
            json.dumps({"pid": zombie.pid, "host": settings.host, "port": settings.port})
        )
        assert emulator.inspect(settings, tmp_path).state == "gone"
    finally:
        zombie.wait()


GONE_TAIL = " (the server was killed or the machine restarted)"


def _live_other_process() -> subprocess.Popen[bytes]:
    """A live process that is not a moto server (it reads stdin until the test closes it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # it runs its own program now (exec done)
    return proc


def test_a_pidfile_naming_a_live_process_that_is_not_moto_is_cleared_and_left_running(tmp_path: Path) -> None:
    settings = EmulatorSettings(port=free_port())
    other = _live_other_process()
    try:
        pidfile = emulator.pidfile_path(tmp_path, settings)
        pidfile.write_text(json.dumps({"pid": other.pid, "host": settings.host, "port": settings.port}))
        assert emulator.inspect(settings, tmp_path).state == "foreign"
        assert "is not our moto server for this port (it is now: " in emulator.status(settings, tmp_path)
        state = emulator.up(settings, tmp_path)
        try:
            assert state.pid != other.pid and emulator.is_moto(state.url)
            assert other.poll() is None  # never signalled
        finally:
            emulator.down(settings, tmp_path)
    finally:
        other.communicate(b"")


def test_a_pidfile_naming_another_ports_moto_server_is_not_ours(
    moto_server: emulator.EmulatorState, tmp_path: Path
) -> None:
    """`local.down` for port B must not stop the server of port A that a wrong pidfile names."""
    settings = EmulatorSettings(port=free_port())
    pidfile = emulator.pidfile_path(tmp_path, settings)
    pidfile.write_text(json.dumps({"pid": moto_server.pid, "host": settings.host, "port": settings.port}))
    assert emulator.inspect(settings, tmp_path).state == "foreign"
    assert "removed stale pidfile" in emulator.down(settings, tmp_path)
    assert not pidfile.exists()
    assert emulator.is_moto(moto_server.url)  # still running


def test_unreadable_pidfile_is_named_and_down_removes_it(tmp_path: Path) -> None:
    settings = EmulatorSettings(port=free_port())
    pidfile = emulator.pidfile_path(tmp_path, settings)
    pidfile.write_text("{not json")
    with pytest.raises(EmulatorError, match="is unreadable"):
        emulator.up(settings, tmp_path)
    assert "removed unreadable pidfile" in emulator.down(settings, tmp_path)


def test_port_taken_by_something_else(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        settings = EmulatorSettings(port=port)
        with pytest.raises(
            EmulatorError, match=f"port {port} on 127.0.0.1 is already in use by another process"
        ) as err:
            emulator.up(settings, tmp_path)
        assert f"pid {os.getpid()} (" in str(err.value)  # the holder: this test's process
        assert f"port {port} is held by pid {os.getpid()}" in emulator.status(settings, tmp_path)
    assert not emulator.pidfile_path(tmp_path, settings).exists()


def test_port_taken_by_another_program_after_our_server_died(tmp_path: Path) -> None:
    """A stale pidfile is cleared, but a port someone else took meanwhile is still refused."""
    settings = EmulatorSettings(port=free_port())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    emulator.pidfile_path(tmp_path, settings).write_text(
        json.dumps({"pid": dead.pid, "host": settings.host, "port": settings.port})
    )
    holder = subprocess.Popen(
        [sys.executable, "-m", "http.server", "-b", "127.0.0.1", str(settings.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()  # "Serving HTTP on ..." : it listens
        with pytest.raises(EmulatorError, match=f"already in use by another process: pid {holder.pid} ") as err:
            emulator.up(settings, tmp_path)
        assert "http.server" in str(err.value)
        assert not emulator.pidfile_path(tmp_path, settings).exists()
    finally:
        holder.kill()
        holder.wait()


def test_unreachable_emulator_is_named() -> None:
    with pytest.raises(EmulatorError, match="is not answering"):
        emulator.assert_reachable(f"http://127.0.0.1:{free_port()}")


def test_a_server_that_dies_on_start_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'cannot bind' >&2\nexit 3\n")
    fake.chmod(0o755)
    settings = EmulatorSettings(port=free_port())
    with pytest.raises(EmulatorError, match="exited with code 3") as err:
        emulator.up(settings, tmp_path, python=str(fake))
    assert "cannot bind" in str(err.value)
    assert not emulator.pidfile_path(tmp_path, settings).exists()


def test_interrupted_start_kills_the_child_and_removes_the_pidfile(tmp_path: Path) -> None:
    settings = EmulatorSettings(port=free_port())

    def interrupted() -> float:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        emulator.up(settings, tmp_path, clock=interrupted)
    assert not emulator.pidfile_path(tmp_path, settings).exists()
    assert not emulator.port_open(settings.host, settings.port)


def test_missing_moto_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto is the `local` extra: without it, `up` names the extra instead of a dead subprocess."""
    monkeypatch.setitem(sys.modules, "moto", None)  # find_spec answers None, as when it is not installed
    settings = EmulatorSettings(host="127.0.0.1", port=free_port())
    with pytest.raises(EmulatorError) as err:
        emulator.up(settings, tmp_path)
    assert err.value.message == "the local emulator needs moto, which is not installed"
    assert "pip install -e '.[local]'" in (err.value.hint or "")
    assert not emulator.pidfile_path(tmp_path, settings).exists()


def test_the_state_bucket_on_the_emulator_accepts_plain_http(moto_server: emulator.EmulatorState) -> None:
    """moto enforces bucket policies and the emulator has no TLS: a TLS-only policy there would
    answer 403 to Terraform's state and the deploy lock."""
    import dataclasses

    from deploy.aws.state_bucket import ensure_state_bucket
    from deploy.config import EnvConfig, StateSettings

    env = EnvConfig(
        name="local",
        region="us-east-1",
        endpoint_url=moto_server.url,
        emulator=EmulatorSettings(port=int(moto_server.url.rsplit(":", 1)[1])),
    )
    env = dataclasses.replace(env, state=StateSettings(bucket="tf-state-http", key="k"))
    ensure_state_bucket(env)
    s3 = _client("s3", moto_server.url)
    s3.put_object(Bucket="tf-state-http", Key="env:/local/k", Body=b"{}")
    assert s3.get_object(Bucket="tf-state-http", Key="env:/local/k")["Body"].read() == b"{}"

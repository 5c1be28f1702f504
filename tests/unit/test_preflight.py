"""The preflight: every prerequisite checked before the first write, every problem reported at once."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import UnauthorizedSSOTokenError
from moto import mock_aws

from deploy import preflight
from deploy.config import EmulatorSettings, EnvConfig, Paths
from deploy.errors import PreflightError
from deploy.preflight import Check, Mark
from deploy.verify.jail import IsolationDecision
from tests import interrupts

ROOT = Path(__file__).resolve().parents[2]


def aws_env(**kw: Any) -> EnvConfig:
    return EnvConfig(name="staging", region="us-west-2", profile=kw.pop("profile", None), **kw)


def failing(name: str, fix: str) -> Any:
    return lambda: Check(name=name, mark=Mark.FAILED, detail=f"{name} is broken", fix=fix)


def test_every_problem_is_reported_at_once_with_its_fix() -> None:
    env = aws_env()
    result = preflight.run(
        env,
        "deploy",
        overrides={
            preflight.TERRAFORM: failing(preflight.TERRAFORM, "install terraform"),
            preflight.RUNTIME_PYTHON: failing(preflight.RUNTIME_PYTHON, "pyenv install 3.12"),
            preflight.SANDBOX: failing(preflight.SANDBOX, "apt-get install -y bubblewrap"),
            preflight.CREDENTIALS: failing(preflight.CREDENTIALS, "aws sso login --profile x"),
            preflight.PROVIDER: lambda: Check(name=preflight.PROVIDER, mark=Mark.PASSED, detail="ok"),
            preflight.BUILDER: lambda: Check(name=preflight.BUILDER, mark=Mark.PASSED, detail="ok"),
        },
    )
    assert not result.ok
    assert [c.name for c in result.failures] == [
        preflight.TERRAFORM,
        preflight.RUNTIME_PYTHON,
        preflight.SANDBOX,
        preflight.CREDENTIALS,
    ]
    with pytest.raises(PreflightError) as err:
        result.raise_for_failures()
    text = str(err.value)
    for fix in ("install terraform", "pyenv install 3.12", "apt-get install -y bubblewrap", "aws sso login"):
        assert f"fix: {fix}" in text
    assert "nothing was written" in text
    assert err.value.exit_code == 15
    # An AWS environment has no emulator to check; it is marked as such, never with a ✓.
    emulator = next(c for c in result.checks if c.name == preflight.EMULATOR)
    assert emulator.mark is Mark.SKIPPED


def test_each_command_runs_only_the_checks_it_needs() -> None:
    env = aws_env()
    passed = {name: (lambda n=name: Check(name=n, mark=Mark.PASSED, detail="ok")) for name in preflight.ALL}
    result = preflight.run(env, "unlock", overrides=passed)
    ran = {c.name for c in result.checks if c.mark is Mark.PASSED}
    assert ran == {preflight.CREDENTIALS}
    dry = preflight.run(env, "deploy", overrides=passed, skip=(preflight.SANDBOX,))
    assert next(c for c in dry.checks if c.name == preflight.SANDBOX).mark is Mark.SKIPPED


def test_the_independent_checks_run_side_by_side_and_report_in_order() -> None:
    """Terraform's, the interpreter's and the sandbox's checks each wait on another process: they run
    at once. Each of these waits for the other two at a barrier, which only a concurrent run passes (the
    timeout is a hang guard, never a measurement); the AWS checks still run after, and only if all passed."""
    env = aws_env()
    together = threading.Barrier(3, timeout=30)
    after: list[str] = []

    def waits(name: str) -> Any:
        def check() -> Check:
            together.wait()
            return Check(name=name, mark=Mark.PASSED, detail="ok")

        return check

    def last(name: str) -> Any:
        def check() -> Check:
            after.append(name)
            return Check(name=name, mark=Mark.PASSED, detail="ok")

        return check

    passed = {name: (lambda n=name: Check(name=n, mark=Mark.PASSED, detail="ok")) for name in preflight.ALL}
    result = preflight.run(
        env,
        "deploy",
        overrides={
            **passed,
            **{name: waits(name) for name in (preflight.TERRAFORM, preflight.RUNTIME_PYTHON, preflight.SANDBOX)},
            **{name: last(name) for name in (preflight.SECRETS, preflight.ALARMS)},
        },
    )
    assert result.ok and [c.name for c in result.checks] == list(preflight.ALL)
    assert after == [preflight.SECRETS, preflight.ALARMS]


def test_a_check_that_raises_raises_from_the_run() -> None:
    def broken() -> Check:
        raise RuntimeError("the check itself is broken")

    passed = {name: (lambda n=name: Check(name=n, mark=Mark.PASSED, detail="ok")) for name in preflight.ALL}
    with pytest.raises(RuntimeError, match="the check itself is broken"):
        preflight.run(aws_env(), "deploy", overrides={**passed, preflight.SANDBOX: broken})


@pytest.mark.parametrize("lands_on", ["the process", "the blocked check's thread"])
def test_ctrl_c_during_the_checks_does_not_wait_for_a_blocked_one(lands_on: str) -> None:
    """A check stuck on the network (an STS call retrying) must not hold a Ctrl-C: the run is interrupted
    while that check is still blocked. The blocked check gives up after a hang guard, never reached.

    "The blocked check's thread" is the case a bare ``join()`` misses (see ``tests/interrupts.py``)."""
    started, release = threading.Event(), threading.Event()
    gave_up: list[bool] = []
    blocked_thread: list[int] = []

    def blocked() -> Check:
        blocked_thread.append(threading.get_ident())
        started.set()
        gave_up.append(not release.wait(timeout=30))
        return Check(name=preflight.CREDENTIALS, mark=Mark.PASSED, detail="late")

    def interrupt() -> None:
        started.wait(timeout=30)
        interrupts.until_the_main_thread_waits_in(threading, "join")
        interrupts.interrupt(None if lands_on == "the process" else blocked_thread[0])

    passed = {name: (lambda n=name: Check(name=n, mark=Mark.PASSED, detail="ok")) for name in preflight.ALL}
    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            preflight.run(aws_env(), "deploy", overrides={**passed, preflight.CREDENTIALS: blocked})
        assert gave_up == []  # interrupted while the check was still blocked, not after it gave up
    finally:
        release.set()
        sender.join()


def test_the_sandbox_check_is_the_runs_own_decision() -> None:
    def refuse(**_: Any) -> IsolationDecision:
        return IsolationDecision(mode="bwrap", ok=False, detail="bwrap is not installed", fix="apt-get install")

    def fallback(**_: Any) -> IsolationDecision:
        return IsolationDecision(mode="fallback", ok=True, detail="no bwrap: namespaces", fix=None)

    failed = preflight.check_sandbox(aws_env(), decide=refuse)
    assert failed.failed and failed.fix == "apt-get install"
    noted = preflight.check_sandbox(aws_env(), decide=fallback)
    assert noted.mark is Mark.NOTE  # it runs, but not with a ✓: the run is weaker than usual


def _fake_terraform(tmp_path: Path, version: str) -> Path:
    script = tmp_path / "terraform"
    script.write_text(f"#!/bin/sh\necho '{json.dumps({'terraform_version': version})}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_a_terraform_older_than_the_minimum_is_named(tmp_path: Path) -> None:
    from deploy.terraform import find_terraform

    old = _fake_terraform(tmp_path, "1.5.7")
    check = preflight.check_terraform(lambda: find_terraform(binary=old))
    assert check.failed
    assert "1.5.7" in check.detail and "too old" in check.detail
    ok = preflight.check_terraform(lambda: find_terraform(binary=_fake_terraform(tmp_path, "1.11.0")))
    assert ok.mark is Mark.PASSED


def _mirror(tmp_path: Path, version: str, platform: str = "linux_amd64") -> Path:
    (tmp_path / "mirror" / "registry.terraform.io" / "hashicorp" / "aws" / version / platform).mkdir(parents=True)
    return tmp_path / "mirror"


def test_a_mirror_without_the_locked_provider_version_is_named(tmp_path: Path) -> None:
    env = aws_env(paths=Paths(root=ROOT))
    locked = preflight.locked_provider_version(ROOT / "infra" / "terraform")
    assert locked is not None
    stale = _mirror(tmp_path, "5.0.0")
    check = preflight.check_provider(env, {"TF_PLUGIN_MIRROR": str(stale)}, machine="x86_64")
    assert check.failed
    assert locked in check.detail and "5.0.0" in check.detail and str(stale) in check.detail
    good = _mirror(tmp_path / "good", locked)
    assert preflight.check_provider(env, {"TF_PLUGIN_MIRROR": str(good)}, machine="x86_64").mark is Mark.PASSED
    # The same mirror for another machine's platform does not pass.
    assert preflight.check_provider(env, {"TF_PLUGIN_MIRROR": str(good)}, machine="aarch64").failed


def test_a_runtime_interpreter_of_the_wrong_minor_version_is_named(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.12").symlink_to(sys.executable)  # answers with this interpreter's version
    environ = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home")}
    env = EnvConfig(name="local", region="us-east-1", runtime="python3.12")
    check = preflight.check_runtime_python(env, environ)
    if sys.version_info[:2] == (3, 12):
        assert check.mark is Mark.PASSED
        return
    assert check.failed
    assert f"is Python {sys.version_info[0]}.{sys.version_info[1]}" in check.detail
    assert "pyenv install 3.12" in (check.fix or "")


@mock_aws
def test_credentials_of_another_account_stop_the_run() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    sts = boto3.client("sts", region_name="us-west-2")
    account = sts.get_caller_identity()["Account"]
    wrong = preflight.check_credentials(aws_env(account_id="111111111111"), sts=sts)
    assert wrong.failed
    assert account in wrong.detail and "111111111111" in wrong.detail
    assert "refusing" in wrong.detail
    right = preflight.check_credentials(aws_env(account_id=account), sts=sts)
    assert right.mark is Mark.PASSED and "matches account_id" in right.detail


def test_a_profile_that_does_not_exist_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "config"))
    check = preflight.check_credentials(aws_env(profile="nosuch"))
    assert check.failed
    assert "'nosuch' does not exist" in check.detail
    assert "--profile nosuch" in (check.fix or "")


def test_an_expired_sso_token_gets_the_login_command() -> None:
    class Expired:
        def get_caller_identity(self) -> Any:
            raise UnauthorizedSSOTokenError()

    check = preflight.check_credentials(aws_env(profile="team-sso"), sts=Expired())
    assert check.failed
    assert check.fix == "aws sso login --profile team-sso"


def test_an_emulator_port_held_by_another_program_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = EnvConfig(
            name="local",
            region="us-east-1",
            emulator=EmulatorSettings(host="127.0.0.1", port=port),
            paths=Paths(root=tmp_path),
        )
        check = preflight.check_emulator(env)
    assert check.failed
    assert f"port {port}" in check.detail and "held by a program" in check.detail
    assert f"pid {os.getpid()}" in check.detail
    assert "emulator.port" in (check.fix or "")
    assert not (tmp_path / ".local").exists()  # the check wrote nothing


def test_a_docker_builder_without_an_engine_fails_clearly() -> None:
    env = EnvConfig(name="local", region="us-east-1", builder="docker")

    def no_engine() -> None:
        raise ConnectionError("Error while fetching server API version: No such file or directory")

    check = preflight.check_builder(env, docker_ping=no_engine)
    assert check.failed and "no Docker engine answers" in check.detail


def test_doctor_exits_15_with_the_table_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "aws-config").write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INVOKE_"))},
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-config"),
    }

    def made() -> set[str]:
        """Artifacts and Terraform data dirs (the settings' and the function map's memos are caches)."""
        build = {p.name for p in (ROOT / ".build").glob("*")} - {"settings", "function-map"}
        return build | {p.name for p in (ROOT / "infra" / "terraform").glob(".terraform-staging*")}

    before = made()
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "doctor", "--env", "staging", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 15, result.stderr
    report = json.loads(result.stdout)
    credentials = next(c for c in report["checks"] if c["name"] == preflight.CREDENTIALS)
    assert credentials["status"] == "failed"
    assert "'bluemoxon-staging' does not exist" in credentials["detail"]
    assert "✗" in result.stderr and "credentials" in result.stderr
    assert "Traceback" not in result.stderr
    assert made() == before

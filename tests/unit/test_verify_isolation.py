"""Code under verify gets no credentials: not from the environment, not from ~/.aws, not from metadata.

A layer package and a handler that, on import, write whatever credentials they can find to a file;
the sandbox runs them with distinctive fake host credentials set, and the file shows none of them.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from deploy import verify
from deploy.config import EnvConfig, FunctionTarget, VerifySettings
from deploy.errors import ConfigError, VerifyError
from deploy.verify import isolation
from deploy.verify.smoke import check_expect, expectation_for, validate_expect
from tests.sample_app import SAMPLE_SMOKE
from tests.unit.leakprobe import (
    CASES,
    FUNCTION,
    HOST_SECRETS,
    LAYER,
    assert_no_leak,
    deployer_process,
    let_leak_file_out,
    set_host_credentials,
)
from tests.unit.test_verify import HOST_ARCH, zip_artifact


@pytest.fixture(scope="module")
def python312() -> Path:
    return verify.find_runtime_python("3.12")


@pytest.mark.parametrize("endpoint", ["emulator", "none"])
def test_verify_local_sandbox_sees_no_host_credentials(
    tmp_path: Path, python312: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    set_host_credentials(monkeypatch, tmp_path / "home")
    leak_file = tmp_path / "leak" / "leak.jsonl"
    let_leak_file_out(monkeypatch, leak_file)
    emulator = "http://127.0.0.1:5999" if endpoint == "emulator" else None
    env = EnvConfig(
        name="local" if emulator else "staging",
        region="us-east-1",
        endpoint_url=emulator,
        architecture=HOST_ARCH,
        verify=VerifySettings(smoke={"ok": CASES}),
    )
    with deployer_process():
        report = verify.verify_local(
            env,
            [FunctionTarget(key="ok", name="acme-ok", handler="lambdas.ok.handler.handler")],
            layer=zip_artifact(tmp_path / "layer.zip", LAYER, "layer"),
            function=zip_artifact(tmp_path / "function.zip", FUNCTION, "function"),
            python=python312,
            # A function configured with credential variables must not bring them in either.
            environment={"ok": {"LEAK_FILE": str(leak_file), "AWS_ACCESS_KEY_ID": HOST_SECRETS["AWS_ACCESS_KEY_ID"]}},
        )
    assert report.ok, report.problems()
    # local too: the emulator is relayed into the jail's own network namespace, nothing else is reachable
    for record in assert_no_leak(leak_file, python=python312, network=False):
        if emulator:
            # local: the emulator, with its dummy credentials.
            assert record["env"]["AWS_ENDPOINT_URL"] == emulator
            assert record["boto3"][:2] == ["testing", "testing"]
        else:
            # elsewhere: no credentials at all, and an endpoint that refuses.
            assert record["boto3"] is None
            assert record["env"]["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_refusing_endpoint_refuses_at_once() -> None:
    env = EnvConfig(name="staging", region="us-east-1")
    with isolation.sandbox_endpoint(env) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.settimeout(5)
            sock.connect(("127.0.0.1", port))


def test_admin_cleanup_without_aws_answers_invoke_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real API in the isolated environment: its invoke of cleanup fails fast with the error shape."""
    from app.main import handler

    set_host_credentials(monkeypatch, tmp_path / "home")
    env = EnvConfig(name="staging", region="us-west-2")
    [case] = [c for c in SAMPLE_SMOKE["api"] if c.name == "admin-cleanup-dry-run"]
    with isolation.sandbox_endpoint(env) as url:
        isolated = isolation.aws_environment(env, scratch=tmp_path / "scratch", endpoint_url=url)
        for name in [*HOST_SECRETS, "AWS_ENDPOINT_URL_LAMBDA"]:
            monkeypatch.delenv(name, raising=False)
        for name, value in isolated.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CLEANUP_FUNCTION_NAME", "acme-staging-cleanup")
        started = time.monotonic()
        response = handler(dict(case.event), None)
        elapsed = time.monotonic() - started
    assert check_expect(expectation_for(case.expect, aws=False), response) == []
    assert json.loads(response["body"])["error"] == "cleanup_invoke_failed"
    # Answered, not hung: far below botocore's connect and read timeouts.
    assert elapsed < 5
    # With AWS behind it (local), the same case still expects the cleanup result.
    assert expectation_for(case.expect, aws=True)["statusCode"] == 200


def test_without_aws_expectations_are_validated() -> None:
    validate_expect({"statusCode": 200, "without_aws": {"statusCode": 502}}, "case")
    with pytest.raises(ConfigError, match=r"expect.without_aws must be a mapping of expectations \(no directives\)"):
        validate_expect({"without_aws": {"remote": False}}, "case")
    with pytest.raises(ConfigError, match="unknown expect key"):
        validate_expect({"without_aws": {"statuscode": 502}}, "case")


def test_function_variables_drop_credential_names() -> None:
    kept = isolation.function_variables(
        {
            "CUSTOM": "x",
            "AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrap",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_ENDPOINT_URL_LAMBDA": "https://real",
            "AWS_SHARED_CREDENTIALS_FILE": "/home/me/.aws/credentials",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
            "GITHUB_TOKEN": "g",
            "HOME": "/home/me",
        }
    )
    assert kept == {"CUSTOM": "x", "AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrap"}


OURS = "arn:aws:lambda:us-west-2:111111111111:layer:acme-deps:7"
FN_ARN = "arn:aws:lambda:us-west-2:111111111111:function:acme-api:live"


@pytest.mark.parametrize(
    ("layer", "trusted", "refused"),
    [
        (OURS, (), False),
        ("arn:aws:lambda:us-west-2:222222222222:layer:acme-deps:7", (), True),  # our name, another account
        ("arn:aws:lambda:us-west-2:111111111111:layer:other:1", (), True),  # our account, another name
        (
            "arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension:38",
            ("arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension",),
            False,
        ),
    ],
)
def test_only_our_and_trusted_layers_run(layer: str, trusted: tuple[str, ...], refused: bool) -> None:
    env = EnvConfig(name="staging", region="us-west-2", verify=VerifySettings(trusted_layers=trusted))
    kwargs: dict[str, Any] = {"function": "acme-api", "layer_name": "acme-deps", "function_arn": FN_ARN}
    if not refused:
        isolation.require_trusted_layers(env, layer_arns=[OURS, layer], **kwargs)
        return
    with pytest.raises(VerifyError) as info:
        isolation.require_trusted_layers(env, layer_arns=[OURS, layer], **kwargs)
    assert info.value.message.startswith(f"acme-api uses layer(s) {layer}, which are not acme-deps of this account")
    assert "deploy.environments.staging.verify.trusted_layers" in info.value.message

"""deploy/aws/secrets.py against moto: a referenced secret that does not exist is named, with the
function and variable that reference it; existing ones pass; nothing is written."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deploy.aws import calls
from deploy.aws.secrets import missing_secrets, secret_references
from deploy.config import EnvConfig, FunctionTarget, Targets
from tests.targets import make_targets

REGION = "us-east-1"
ENV = EnvConfig(name="test", region=REGION)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def _targets(*names: str) -> Targets:
    return make_targets("test", tuple(FunctionTarget(key=n, name=f"acme-test-{n}", handler="h.handler") for n in names))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        sm = boto3.client("secretsmanager", region_name=REGION)
        lam = boto3.client("lambda", region_name=REGION)

        def function(name: str, variables: dict[str, str]) -> None:
            lam.create_function(
                FunctionName=f"acme-test-{name}",
                Runtime="python3.12",
                Role=role,
                Handler="h.handler",
                Code={"ZipFile": _zip()},
                Environment={"Variables": variables},
            )

        yield {"sm": sm, "function": function}


def test_secret_references_are_the_secret_arn_variables() -> None:
    assert secret_references({"DATABASE_URL_SECRET_ARN": "arn:a", "ENVIRONMENT": "x", "X_SECRET_ARN": ""}) == {
        "DATABASE_URL_SECRET_ARN": "arn:a"
    }


def test_a_missing_secret_is_named_with_who_references_it(aws: dict[str, Any]) -> None:
    existing = aws["sm"].create_secret(Name="acme-test/database-url")["ARN"]
    gone = existing.replace("database-url", "old-url")  # an ARN of this account that names nothing
    aws["function"]("api", {"DATABASE_URL_SECRET_ARN": existing, "ENVIRONMENT": "test"})
    aws["function"]("worker", {"DATABASE_URL_SECRET_ARN": existing, "OTHER_SECRET_ARN": gone})
    aws["function"]("plain", {"ENVIRONMENT": "test"})
    with calls.count_writes() as writes:
        # "later" is in Terraform's map but not created yet: nothing to check, not an error.
        problems = missing_secrets(ENV, _targets("api", "worker", "plain", "later"))
    assert problems == [f"secret {gone} does not exist, referenced by acme-test-worker OTHER_SECRET_ARN"]
    assert writes.calls == []


def test_existing_secrets_pass_and_deleted_ones_do_not(aws: dict[str, Any]) -> None:
    kept = aws["sm"].create_secret(Name="acme-test/kept")["ARN"]
    deleted = aws["sm"].create_secret(Name="acme-test/deleted")["ARN"]
    aws["function"]("api", {"DATABASE_URL_SECRET_ARN": kept})
    assert missing_secrets(ENV, _targets("api")) == []
    aws["sm"].delete_secret(SecretId=deleted, RecoveryWindowInDays=7)
    assert missing_secrets(ENV, _targets("api"), extra_arns=[deleted]) == [
        f"secret {deleted} is scheduled for deletion, referenced by (configuration)"
    ]


def test_the_preflight_names_a_missing_secret_before_the_first_write(aws: dict[str, Any]) -> None:
    from deploy import preflight

    gone = aws["sm"].create_secret(Name="acme-test/database-url")["ARN"].replace("database-url", "gone")
    aws["function"]("api", {"DATABASE_URL_SECRET_ARN": gone})
    check = preflight.check_secrets(ENV, targets=_targets("api"))
    assert check.failed
    assert gone in check.detail and "acme-test-api DATABASE_URL_SECRET_ARN" in check.detail
    assert "put-secret-value" in (check.fix or "")
    aws["function"]("ok", {})
    assert preflight.check_secrets(ENV, targets=_targets("ok")).mark is preflight.Mark.PASSED

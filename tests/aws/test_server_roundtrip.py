"""publish + attach twice against a real moto server over HTTP, as the local environment runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.aws import calls
from deploy.aws.attach import attach
from deploy.aws.publish import publish_layer
from deploy.config import EnvConfig, FunctionTarget
from deploy.emulator import EmulatorState
from tests.aws.conftest import make_artifact, zip_bytes
from tests.targets import make_targets

REGION = "us-east-1"


def test_publish_and_attach_twice_over_http(
    moto_server: EmulatorState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = moto_server.url
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    env = EnvConfig(name="local", region=REGION, endpoint_url=server)
    boto: dict[str, Any] = {
        "region_name": REGION,
        "endpoint_url": server,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    s3, lam, iam = (boto3.client(s, **boto) for s in ("s3", "lambda", "iam"))
    s3.create_bucket(Bucket="local-artifacts")
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    functions = tuple(FunctionTarget(key=k, name=f"local-{k}", handler="handler.handler") for k in ("api", "cleanup"))
    for fn in functions:
        lam.create_function(
            FunctionName=fn.name,
            Runtime="python3.12",
            Role=role,
            Handler=fn.handler,
            Code={"ZipFile": zip_bytes("old")},
        )
        lam.create_alias(
            FunctionName=fn.name, Name="live", FunctionVersion=lam.publish_version(FunctionName=fn.name)["Version"]
        )
    targets = make_targets("local", functions, bucket="local-artifacts", layer_name="local-deps")
    layer = make_artifact(tmp_path, "layer", "deps")
    code = make_artifact(tmp_path, "function", "def handler(e, c): return 1")

    def deploy() -> None:
        arn = publish_layer(env, targets, layer).layer_version_arn
        assert arn
        assert attach(env, targets, function=code, layer_version_arn=arn).ok

    deploy()
    with calls.count_writes() as writes:
        deploy()
    assert writes.count == 0
    assert len(lam.list_layer_versions(LayerName="local-deps")["LayerVersions"]) == 1
    for fn in functions:
        versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=fn.name)["Versions"]]
        assert versions == ["$LATEST", "1", "2"]  # Terraform's 1 and exactly one from the deploys
        served = lam.get_function_configuration(FunctionName=fn.name, Qualifier="live")
        assert served["Version"] == "2" and served["CodeSha256"] == code.code_sha256

"""One apply on an empty (moto) account creates everything; the deploy tasks' changes are no drift.

Runs the real Terraform against a moto server of its own, on a copy of
infra/terraform so no state lands in the checkout. Needs Terraform >= 1.10 and the
hashicorp/aws provider, from the mirror (/opt/tf-plugins or TF_PLUGIN_MIRROR) when
offline.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from packaging.version import Version

from deploy import terraform as tfm
from deploy.config import ROOT, EmulatorSettings, EnvConfig, Paths
from deploy.emulator import EmulatorState

pytestmark = pytest.mark.e2e
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 125

REGION = "us-east-1"
FUNCTION_NAMES = {
    "api": "bluemoxon-local-api",
    "cleanup": "bluemoxon-local-cleanup",
    "db_sync": "bluemoxon-local-db-sync",
    "eval_runbook_worker": "bluemoxon-local-eval-runbook-worker",
}
# moto < 5.2.5 looks layers up in the Docker backend even with use_docker=false,
# so CreateFunction/UpdateFunctionConfiguration with a layer fail with
# "One or more LayerVersion does not exist".
MIN_MOTO = Version("5.2.5")


@pytest.fixture
def moto_endpoint(moto_server: EmulatorState) -> str:
    """The project's own emulator (deploy.emulator via tests/conftest.py), on a free port."""
    import moto

    assert Version(moto.__version__) >= MIN_MOTO, (
        f"moto {moto.__version__} < {MIN_MOTO}: layers break with use_docker=false"
    )
    return moto_server.url


@pytest.fixture
def local_tf(tmp_path: Path, moto_endpoint: str) -> tuple[EnvConfig, tfm.Terraform]:
    root = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "infra" / "terraform",
        root / "infra" / "terraform",
        ignore=shutil.ignore_patterns(".terraform", ".terraform-*", "terraform.tfstate.d", "*.tfstate*"),
    )
    port = int(moto_endpoint.rsplit(":", 1)[1])
    env = EnvConfig(
        name="local",
        region=REGION,
        emulator=EmulatorSettings(port=port),
        endpoint_url=moto_endpoint,
        tfvars="envs/local.tfvars",
        paths=Paths(root=root),
    )
    # Terraform is a requirement of this project, not an optional extra: a missing or too-old
    # binary fails the test with terraform_for's own message.
    return env, tfm.terraform_for(env)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return buf.getvalue()


def _simulate_deploy(endpoint: str, bucket: str, layer_name: str) -> str:
    """What `inv deploy` does: new layer version, new code, layers, versions, alias."""
    s3 = _client("s3", endpoint)
    lam = _client("lambda", endpoint)
    s3.put_object(Bucket=bucket, Key="lambda/layer-e2e.zip", Body=_zip({"python/e2edep/__init__.py": "X = 1\n"}))
    layer = lam.publish_layer_version(
        LayerName=layer_name,
        Description="deps e2e",
        Content={"S3Bucket": bucket, "S3Key": "lambda/layer-e2e.zip"},
        CompatibleRuntimes=["python3.12"],
        CompatibleArchitectures=["x86_64"],
    )
    assert layer["Version"] == 2
    s3.put_object(
        Bucket=bucket, Key="lambda/code-e2e.zip", Body=_zip({"app/main.py": "def handler(e, c):\n    return 1\n"})
    )
    for name in FUNCTION_NAMES.values():
        lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="lambda/code-e2e.zip")
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        lam.update_function_configuration(FunctionName=name, Layers=[layer["LayerVersionArn"]])
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)
        version = lam.publish_version(FunctionName=name)["Version"]
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion=version)
    return str(layer["LayerVersionArn"])


def test_apply_creates_everything_and_deploys_are_not_drift(
    local_tf: tuple[EnvConfig, tfm.Terraform], moto_endpoint: str
) -> None:
    env, tf = local_tf
    lines: list[str] = []
    tfm.apply(tf, echo=lines.append)
    assert any("Apply complete!" in line for line in lines)
    assert not tfm.plan(tf), "plan right after apply must show no changes"

    targets = tfm.load_targets(env, tf=tf)
    assert targets.bucket == "bluemoxon-frontend-local"
    assert targets.layer_name == "bluemoxon-local-deps"
    assert targets.alias == "live"
    assert (targets.runtime, targets.architecture) == ("python3.12", "x86_64")
    assert {fn.key: fn.name for fn in targets.functions} == FUNCTION_NAMES
    assert targets.function("eval_runbook_worker").handler == "lambdas.eval_runbook_worker.handler.handler"

    lam = _client("lambda", moto_endpoint)
    s3 = _client("s3", moto_endpoint)
    assert s3.get_bucket_versioning(Bucket=targets.bucket)["Status"] == "Enabled"
    assert s3.head_object(Bucket=targets.bucket, Key="lambda/bootstrap.zip")["ContentLength"] > 0
    layer_versions = lam.list_layer_versions(LayerName=targets.layer_name)["LayerVersions"]
    assert [v["Version"] for v in layer_versions] == [1]
    for fn in targets.functions:
        config = lam.get_function(FunctionName=fn.name)["Configuration"]
        assert config["Handler"] == fn.handler
        assert [layer["Arn"] for layer in config["Layers"]] == [layer_versions[0]["LayerVersionArn"]]
        assert lam.get_alias(FunctionName=fn.name, Name="live")["FunctionVersion"] == "1"
    api_env = lam.get_function_configuration(FunctionName=FUNCTION_NAMES["api"])["Environment"]["Variables"]
    assert api_env["CLEANUP_FUNCTION_NAME"].endswith(f":function:{FUNCTION_NAMES['cleanup']}:live")

    iam = _client("iam", moto_endpoint)
    policy = iam.get_role_policy(RoleName=FUNCTION_NAMES["api"], PolicyName=f"{FUNCTION_NAMES['api']}-least-privilege")
    document = policy["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    invoke = [s for s in document["Statement"] if s.get("Sid") == "InvokeFunctions"]  # the map's `invokes`
    cleanup_arn = lam.get_function(FunctionName=FUNCTION_NAMES["cleanup"])["Configuration"]["FunctionArn"]
    assert invoke[0]["Resource"] == [cleanup_arn, f"{cleanup_arn}:*"]

    new_layer = _simulate_deploy(moto_endpoint, targets.bucket, targets.layer_name)
    for fn in targets.functions:
        config = lam.get_function(FunctionName=fn.name)["Configuration"]
        assert [layer["Arn"] for layer in config["Layers"]] == [new_layer]
        assert lam.get_alias(FunctionName=fn.name, Name="live")["FunctionVersion"] == "2"

    assert not tfm.plan(tf), "the deploy tasks' changes (code, layers, versions, alias) must not be drift"

"""moto-backed fixtures: a bucket, a layer, four functions behind `live`, and fault injection.

Names are made up per test on purpose: the library must take every name from `Targets`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from deploy.artifact import Artifact, sha256_file
from deploy.aws import calls
from deploy.aws.retry import RetryPolicy
from deploy.config import EnvConfig, FunctionTarget, Targets
from tests.targets import make_targets

REGION = "us-east-1"
FUNCTION_KEYS = ("api", "cleanup", "db_sync", "eval_runbook_worker")


def make_artifact(tmp_path: Path, kind: str, content: str, *, identity: str | None = None) -> Artifact:
    """A small real zip and its Artifact, as the build step would produce."""
    path = tmp_path / f"{kind}-{hashlib.sha256(content.encode()).hexdigest()[:12]}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("python/mod.py" if kind == "layer" else "handler.py", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(info, content)
    sha = sha256_file(path)
    artifact = Artifact(
        kind=kind,  # type: ignore[arg-type]
        identity=identity or (f"layerid-{sha[:16]}" if kind == "layer" else sha),
        path=path,
        sha256=sha,
        zipped_size=path.stat().st_size,
        unzipped_size=len(content),
        runtime="python3.12",
        architecture="x86_64",
    )
    if kind == "layer":  # a layer build leaves its manifest and SBOM beside the zip
        artifact.write_manifest()
        artifact.sbom_path.write_text('{"bomFormat": "CycloneDX"}\n')
    return artifact


def zip_bytes(content: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", content)
    return buf.getvalue()


@dataclass
class FakeClock:
    """Time that only moves when the code under test sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, **kw: Any) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, clock=self.clock, random=lambda: 1.0, **kw)


def client_error(code: str, operation: str, message: str = "injected") -> ClientError:
    status = {"TooManyRequestsException": 429, "PreconditionFailedException": 412}.get(code, 409)
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def fake_response(parsed: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What a `before-call` handler returns to answer in botocore's place."""
    return SimpleNamespace(status_code=200, headers={}, content=b"", raw=None), parsed


@pytest.fixture
def inject() -> Iterator[Callable[[str, str, Callable[..., Any]], None]]:
    """inject(service, Operation, handler): handler(params=..., **kw) runs before every such call
    on clients the library creates; it may raise or return fake_response(...) or None."""
    registered: list[tuple[str, str, Callable[..., Any]]] = []

    def keep_api_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)

    def hook(service: str, client: Any) -> None:
        # Looked up at call time, not when the client is built: the library reuses its clients
        # (deploy.aws.calls), so one built before an `inject(...)` must see it from then on.
        def before_call(model: Any, context: dict[str, Any], **kw: Any) -> Any:
            kw.pop("params", None)
            for svc, op, handler in list(registered):
                if svc == service and op == model.name:
                    answer = handler(params=context.get("api_params", {}), context=context, model=model, **kw)
                    if answer is not None:
                        return answer
            return None

        client.meta.events.register(f"before-parameter-build.{service}", keep_api_params)
        client.meta.events.register(f"before-call.{service}", before_call)

    with calls.client_hook(hook):
        yield lambda service, op, handler: registered.append((service, op, handler))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


@pytest.fixture
def env() -> EnvConfig:
    return EnvConfig(name="test", region=REGION, endpoint_url=None)


@pytest.fixture
def names() -> SimpleNamespace:
    stem = "acme-test"
    return SimpleNamespace(
        bucket=f"{stem}-artifacts",
        layer=f"{stem}-deps",
        functions=tuple(f"{stem}-{k.replace('_', '-')}" for k in FUNCTION_KEYS),
    )


@pytest.fixture
def targets(names: SimpleNamespace) -> Targets:
    return make_targets(
        "test",
        tuple(
            FunctionTarget(key=k, name=n, handler="handler.handler")
            for k, n in zip(FUNCTION_KEYS, names.functions, strict=True)
        ),
        bucket=names.bucket,
        layer_name=names.layer,
    )


@pytest.fixture
def lam(aws: None) -> Any:
    return boto3.client("lambda", region_name=REGION)


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def role(aws: None) -> str:
    iam = boto3.client("iam", region_name=REGION)
    doc = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}]})
    return str(iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=doc)["Role"]["Arn"])


@pytest.fixture
def bucket(s3: Any, targets: Targets) -> str:
    s3.create_bucket(Bucket=targets.bucket)
    return targets.bucket


@pytest.fixture
def old_layer_arn(lam: Any, targets: Targets) -> str:
    """What Terraform's first apply leaves attached: a placeholder version of our layer."""
    made = lam.publish_layer_version(LayerName=targets.layer_name, Content={"ZipFile": zip_bytes("placeholder")})
    return str(made["LayerVersionArn"])


def create_function(
    lam: Any, role: str, name: str, layers: list[str], *, code: str = "old = 1", bucket: str | None = None
) -> None:
    """A function at version 1 behind `live`; with ``bucket``, its zip is also kept where a deploy
    uploads code (``lambda/function-<sha256>.zip``), so a restore can put it back on $LATEST."""
    data = zip_bytes(code)
    if bucket is not None:
        key = f"lambda/function-{hashlib.sha256(data).hexdigest()}.zip"
        boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=data)
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": data},
        Layers=layers,
    )
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)


@pytest.fixture
def deployed(lam: Any, role: str, bucket: str, old_layer_arn: str, targets: Targets) -> Targets:
    """Four functions at version 1 behind `live`, using the placeholder layer: Terraform's state."""
    for fn in targets.functions:
        create_function(lam, role, fn.name, [old_layer_arn], bucket=bucket)
    return targets


@pytest.fixture
def layer(tmp_path: Path) -> Artifact:
    return make_artifact(tmp_path, "layer", "import json  # deps v1\n")


@pytest.fixture
def code(tmp_path: Path) -> Artifact:
    return make_artifact(tmp_path, "function", "def handler(event, context):\n    return {'ok': True}\n")


def alias_versions(lam: Any, targets: Targets) -> dict[str, str]:
    return {fn.name: lam.get_alias(FunctionName=fn.name, Name="live")["FunctionVersion"] for fn in targets.functions}


def published(lam: Any, name: str) -> list[str]:
    return [
        v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"] if v["Version"] != "$LATEST"
    ]


def _lists_layers_by_arn(service: str, client: Any) -> None:
    """Lambda's ListLayerVersions takes a layer ARN (how production names the publisher); moto
    looks the ARN up as a layer name and finds nothing, so it is given the name it can find."""
    if service != "lambda":
        return

    def by_name(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("LayerName", "")).startswith("arn:"):
            params["LayerName"] = params["LayerName"].rsplit(":", 1)[1]

    client.meta.events.register("before-parameter-build.lambda.ListLayerVersions", by_name)


@pytest.fixture
def publisher(targets: Targets) -> Iterator[str]:
    """Staging's layer, as production's ``remote_cache.publisher`` names it (an ARN, no version)."""
    with calls.client_hook(_lists_layers_by_arn):
        yield f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:layer:{targets.layer_name}"

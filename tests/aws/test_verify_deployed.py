"""verify_deployed against moto: state check, the exact deployed bytes (or a refusal), and the remote invoke."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from deploy import verify
from deploy.artifact import Artifact
from deploy.aws.publish import describe
from deploy.config import EnvConfig, FunctionTarget, SmokeCase, Targets, VerifySettings
from deploy.errors import VerifyError
from deploy.verify import deployed
from deploy.verify.extracted import ExtractionCache
from tests.targets import make_targets
from tests.unit import leakprobe as leak

REGION = "us-east-1"

HANDLER = """
import os
import tinydep

def handler(event, context):
    return {"value": tinydep.VALUE, "custom": os.environ.get("CUSTOM"), "name": context.function_name}
"""

SMOKE = {
    "ok": (
        SmokeCase(name="answer", event={}, expect={"equals": {"value": 42, "custom": "deployed"}}),
        SmokeCase(name="local-only", event={}, expect={"type": "dict", "remote": False}),
    )
}


def zip_of(files: Mapping[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def artifact_of(tmp_path: Path, kind: str, data: bytes, identity: str | None = None) -> Artifact:
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{kind}-{sha[:12]}.zip"
    path.write_bytes(data)
    return Artifact(
        kind=kind,  # type: ignore[arg-type]
        identity=identity or (f"layerid-{sha[:16]}" if kind == "layer" else sha),
        path=path,
        sha256=sha,
        zipped_size=len(data),
        unzipped_size=0,
        runtime="python3.12",
        architecture="x86_64",
    )


@pytest.fixture(scope="module")
def python312() -> Path:
    return verify.find_runtime_python("3.12")


@pytest.fixture
def verify_env() -> EnvConfig:
    return EnvConfig(name="test", region=REGION, verify=VerifySettings(smoke=SMOKE))


@pytest.fixture
def stack_targets(bucket: str) -> Targets:
    return make_targets(
        "test", (FunctionTarget(key="ok", name="acme-test-ok", handler="lambdas.ok.handler.handler"),), bucket=bucket
    )


class Stack:
    def __init__(self, tmp_path: Path, lam: Any, s3: Any, role: str, targets: Targets) -> None:
        self.lam, self.s3, self.targets = lam, s3, targets
        self.layer = artifact_of(tmp_path, "layer", zip_of({"python/tinydep/__init__.py": "VALUE = 42\n"}))
        self.code = artifact_of(
            tmp_path,
            "function",
            zip_of({"lambdas/__init__.py": "", "lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": HANDLER}),
        )
        # As publish-layer and attach do it: objects keyed by identity / sha, code and layer from S3.
        for art in (self.layer, self.code):
            s3.put_object(Bucket=targets.bucket, Key=art.s3_key, Body=art.path.read_bytes())
        made = lam.publish_layer_version(
            LayerName=targets.layer_name,
            Description=describe(self.layer),
            Content={"S3Bucket": targets.bucket, "S3Key": self.layer.s3_key},
            CompatibleRuntimes=["python3.12"],
        )
        self.layer_arn: str = made["LayerVersionArn"]
        fn = targets.functions[0]
        created = lam.create_function(
            FunctionName=fn.name,
            Runtime="python3.12",
            Role=role,
            Handler=fn.handler,
            Code={"S3Bucket": targets.bucket, "S3Key": self.code.s3_key},
            Layers=[self.layer_arn],
            Environment={"Variables": {"CUSTOM": "deployed"}},
            MemorySize=256,
        )
        self.created = created
        version = lam.publish_version(FunctionName=fn.name)["Version"]
        lam.create_alias(FunctionName=fn.name, Name="live", FunctionVersion=version)


@pytest.fixture
def stack(tmp_path: Path, lam: Any, s3: Any, role: str, stack_targets: Targets) -> Stack:
    return Stack(tmp_path, lam, s3, role, stack_targets)


def layer_version(lam: Any, arn: str) -> Any:
    layer_arn, _, number = arn.rpartition(":")
    return lam.get_layer_version(LayerName=layer_arn, VersionNumber=int(number))


class NoUrl:
    """Code.Location as moto reports it is not fetchable; record that it was tried."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        raise OSError("unreachable in tests")


def test_moto_reports_code_sha256_as_base64_of_the_zip(stack: Stack) -> None:
    assert stack.created["CodeSha256"] == stack.code.code_sha256
    assert layer_version(stack.lam, stack.layer_arn)["Content"]["CodeSha256"] == stack.layer.code_sha256


def test_deployed_bytes_from_s3_fallback_run_in_the_sandbox(
    stack: Stack, verify_env: EnvConfig, python312: Path
) -> None:
    fetch = NoUrl()
    report = verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=fetch)
    assert report.ok, report.problems()
    assert report.mode == "deployed"
    [result] = report.functions
    assert result.code_sha256 == stack.code.code_sha256
    assert result.layers == (stack.layer_arn,)
    assert {r.case for r in result.results} == {"answer", "local-only"}
    assert all(r.where == "sandbox" for r in result.results)
    # Both Locations were tried first, then S3 served the bytes.
    assert len(fetch.urls) == 2


def test_the_zips_this_machine_built_stand_in_for_a_download_when_their_hash_matches(
    stack: Stack, verify_env: EnvConfig, python312: Path
) -> None:
    """Right after a deploy the built zips *are* the deployed bytes (same CodeSha256): no 40 MB download."""
    for art in (stack.code, stack.layer):
        stack.s3.delete_object(Bucket=stack.targets.bucket, Key=art.s3_key)
    fetch = NoUrl()
    report = verify.verify_deployed(
        verify_env,
        stack.targets,
        expected_layer=stack.layer,
        expected_function=stack.code,
        python=python312,
        fetch=fetch,
    )
    assert report.ok, report.problems()
    assert fetch.urls == []


def test_a_built_zip_changed_since_is_not_used(stack: Stack, verify_env: EnvConfig, python312: Path) -> None:
    """The local copy must hash to CodeSha256 now; otherwise the deployed bytes are fetched and run."""
    original = stack.layer.path.read_bytes()
    stack.layer.path.write_bytes(zip_of({"python/tinydep/__init__.py": "VALUE = 0\n"}))
    fetch = NoUrl()
    stack.s3.put_object(Bucket=stack.targets.bucket, Key=stack.layer.s3_key, Body=original)
    report = verify.verify_deployed(
        verify_env,
        stack.targets,
        expected_layer=stack.layer,
        expected_function=stack.code,
        python=python312,
        fetch=fetch,
    )
    assert report.ok, report.problems()  # ran the deployed layer (VALUE = 42), fetched from S3
    assert len(fetch.urls) == 1  # the layer's Location was tried; the code came from the local copy


def test_trees_cached_by_the_local_verify_need_no_download_and_no_hashing(
    stack: Stack, verify_env: EnvConfig, python312: Path, tmp_path: Path
) -> None:
    """The local verify extracted exactly these bytes (their sha256 is the CodeSha256 Lambda reports):
    the deployed verify runs those trees, with nothing fetched, and no zip on this machine either."""
    trees = ExtractionCache(root=tmp_path / "extracted")
    local = verify.verify_local(
        verify_env,
        stack.targets,
        layer=stack.layer,
        function=stack.code,
        python=python312,
        environment={"ok": {"CUSTOM": "deployed"}},
        trees=trees,
    )
    assert local.ok, local.problems()
    for art in (stack.code, stack.layer):
        stack.s3.delete_object(Bucket=stack.targets.bucket, Key=art.s3_key)
        art.path.unlink()
    fetch = NoUrl()
    report = verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=fetch, trees=trees)
    assert report.ok, report.problems()
    assert fetch.urls == []
    # Without the cache the same state has nothing to run: the trees were what made it pass.
    with pytest.raises(VerifyError, match="cannot download"):
        verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl())


def test_deployed_bytes_from_code_location(stack: Stack, verify_env: EnvConfig, python312: Path) -> None:
    """On real AWS the presigned Location serves the zip; our S3 copies are then not needed at all."""
    by_sha = {
        stack.code.code_sha256: stack.code.path.read_bytes(),
        stack.layer.code_sha256: stack.layer.path.read_bytes(),
    }
    code_loc = stack.lam.get_function(FunctionName="acme-test-ok", Qualifier="live")["Code"]["Location"]
    layer_loc = layer_version(stack.lam, stack.layer_arn)["Content"]["Location"]
    served = {code_loc: by_sha[stack.code.code_sha256], layer_loc: by_sha[stack.layer.code_sha256]}
    for art in (stack.code, stack.layer):
        stack.s3.delete_object(Bucket=stack.targets.bucket, Key=art.s3_key)
    report = verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=served.__getitem__)
    assert report.ok, report.problems()


def test_tampered_s3_object_is_refused(stack: Stack, verify_env: EnvConfig, python312: Path) -> None:
    tampered = zip_of({"lambdas/__init__.py": "", "lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": "evil = 1\n"})
    stack.s3.put_object(Bucket=stack.targets.bucket, Key=stack.code.s3_key, Body=tampered)
    with pytest.raises(VerifyError) as info:
        verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl())
    assert info.value.message.startswith(
        f"deployed zip for acme-test-ok does not match CodeSha256 {stack.code.code_sha256}"
    )


def test_missing_deployed_bytes_is_an_error(stack: Stack, verify_env: EnvConfig, python312: Path) -> None:
    stack.s3.delete_object(Bucket=stack.targets.bucket, Key=stack.code.s3_key)
    with pytest.raises(VerifyError, match="cannot download the deployed code of acme-test-ok"):
        verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl())


def test_alias_serving_other_code_fails_the_state_check(
    tmp_path: Path, stack: Stack, verify_env: EnvConfig, python312: Path
) -> None:
    other = artifact_of(tmp_path, "function", zip_of({"lambdas/__init__.py": "# newer build\n"}))
    report = verify.verify_deployed(
        verify_env, stack.targets, expected_function=other, expected_layer=stack.layer, python=python312, fetch=NoUrl()
    )
    assert not report.ok
    [result] = report.functions
    assert result.error is not None
    assert f"live serves code {stack.code.code_sha256}, expected {other.code_sha256}" in result.error
    assert f"$LATEST serves code {stack.code.code_sha256}" in result.error
    assert result.results == ()  # nothing ran


def test_alias_with_other_layer_fails_the_state_check(
    tmp_path: Path, stack: Stack, verify_env: EnvConfig, python312: Path
) -> None:
    other = artifact_of(tmp_path, "layer", zip_of({"python/tinydep/__init__.py": "VALUE = 43\n"}))
    report = verify.verify_deployed(
        verify_env, stack.targets, expected_layer=other, expected_function=stack.code, python=python312, fetch=NoUrl()
    )
    assert not report.ok
    assert f"live uses {stack.layer_arn} with CodeSha256 {stack.layer.code_sha256}" in (report.functions[0].error or "")


def test_layer_found_by_content_when_description_has_no_identity(
    tmp_path: Path, stack: Stack, verify_env: EnvConfig, python312: Path
) -> None:
    """A layer published by someone else's tooling: search our layer objects for the matching bytes."""
    data = stack.layer.path.read_bytes()
    stack.s3.put_object(Bucket=stack.targets.bucket, Key="lambda/layer-decoy.zip", Body=b"x" * len(data))
    stack.s3.put_object(Bucket=stack.targets.bucket, Key="lambda/layer-handmade.zip", Body=data)
    made = stack.lam.publish_layer_version(
        LayerName=stack.targets.layer_name,
        Content={"S3Bucket": stack.targets.bucket, "S3Key": "lambda/layer-handmade.zip"},
    )
    stack.s3.delete_object(Bucket=stack.targets.bucket, Key=stack.layer.s3_key)
    name = stack.targets.functions[0].name
    stack.lam.update_function_configuration(FunctionName=name, Layers=[made["LayerVersionArn"]])
    version = stack.lam.publish_version(FunctionName=name)["Version"]
    stack.lam.update_alias(FunctionName=name, Name="live", FunctionVersion=version)
    report = verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl())
    assert report.ok, report.problems()
    assert report.functions[0].layers == (made["LayerVersionArn"],)


def test_remote_flag_adds_remote_results(
    stack: Stack, verify_env: EnvConfig, python312: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Mapping[str, str]]] = []
    timeouts: list[float] = []

    def fake_remote(
        env: EnvConfig,
        fn: FunctionTarget,
        cases: Any,
        environment: Mapping[str, str],
        *,
        alias: str,
        function_timeout_s: float,
    ) -> list[verify.SmokeResult]:
        seen.append((fn.name, environment))
        timeouts.append(function_timeout_s)
        return [
            verify.SmokeResult(
                case="answer", ok=False, summary="function error", duration_ms=1.0, error="boom", where="remote"
            )
        ]

    monkeypatch.setattr(deployed, "remote_check", fake_remote)
    report = verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl(), remote=True)
    assert seen == [("acme-test-ok", {"CUSTOM": "deployed"})]
    assert timeouts == [3.0]  # the function's configured Timeout (Lambda's default), for the read timeout
    assert not report.ok
    assert report.problems() == ["acme-test-ok [remote] case answer: boom"]
    # remote=None follows the environment's setting (false here): no remote call.
    seen.clear()
    assert verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl()).ok
    assert seen == []


# ---------------------------------------------------------------------------
# Remote invoke, with Stubber


def _stubbed() -> tuple[Any, Stubber, Any, Stubber]:
    lam = boto3.client("lambda", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    logs = boto3.client("logs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return lam, Stubber(lam), logs, Stubber(logs)


def _invoke_response(payload: Any, *, function_error: str | None = None, log: str = "") -> dict[str, Any]:
    from botocore.response import StreamingBody

    raw = json.dumps(payload).encode()
    resp: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(raw), len(raw)),
        "LogResult": base64.b64encode(log.encode()).decode(),
        "ExecutedVersion": "3",
    }
    if function_error:
        resp["FunctionError"] = function_error
    return resp


INVOKE_PARAMS = {
    "FunctionName": "acme-test-ok",
    "Qualifier": "live",
    "InvocationType": "RequestResponse",
    "LogType": "Tail",
    "Payload": ANY,
}
LOGS_PARAMS = {
    "logGroupName": "/aws/lambda/acme-test-ok",
    "filterPattern": '"ImportModuleError"',
    "startTime": 1_000_000 - verify.LOG_LOOKBACK_MS,
    "limit": 5,
}
FN = FunctionTarget(key="ok", name="acme-test-ok", handler="lambdas.ok.handler.handler")
CASES = (
    SmokeCase(name="answer", event={"q": 1}, expect={"equals": {"value": 42}}),
    SmokeCase(name="never-remote", event={}, expect={"remote": False}),
    SmokeCase(name="needs-env", event={}, expect={"requires_env": ["EVAL_API_URL"]}),
)


def _remote(lam: Any, logs: Any) -> list[verify.SmokeResult]:
    env = EnvConfig(name="staging", region=REGION)
    return verify.remote_check(env, FN, CASES, {"CUSTOM": "x"}, lam=lam, logs=logs, now_ms=lambda: 1_000_000)


def test_remote_good_response() -> None:
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response("invoke", _invoke_response({"value": 42}), INVOKE_PARAMS)
    logs_stub.add_response("filter_log_events", {"events": []}, LOGS_PARAMS)
    with lam_stub, logs_stub:
        results = _remote(lam, logs)
    lam_stub.assert_no_pending_responses()
    logs_stub.assert_no_pending_responses()
    assert [(r.case, r.ok, r.where) for r in results] == [("answer", True, "remote"), ("needs-env", True, "remote")]
    assert results[1].skipped == "needs EVAL_API_URL in the function's environment"


def test_remote_function_error() -> None:
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response(
        "invoke",
        _invoke_response({"errorMessage": "boom", "errorType": "RuntimeError"}, function_error="Unhandled"),
        INVOKE_PARAMS,
    )
    logs_stub.add_response("filter_log_events", {"events": []}, LOGS_PARAMS)
    with lam_stub, logs_stub:
        results = _remote(lam, logs)
    answer = results[0]
    assert not answer.ok and answer.summary == "function error" and answer.error == "RuntimeError: boom"


def test_remote_import_module_error_in_log_tail() -> None:
    tail = (
        "START RequestId: 1\n[ERROR] Runtime.ImportModuleError: Unable to import module 'lambdas.ok.handler': "
        "No module named 'tinydep'\nEND RequestId: 1\n"
    )
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response(
        "invoke",
        _invoke_response(
            {
                "errorMessage": "Unable to import module 'lambdas.ok.handler': No module named 'tinydep'",
                "errorType": "Runtime.ImportModuleError",
            },
            function_error="Unhandled",
            log=tail,
        ),
        INVOKE_PARAMS,
    )
    logs_stub.add_response(
        "filter_log_events",
        {"events": [{"message": "[ERROR] Runtime.ImportModuleError: Unable to import module 'lambdas.ok.handler'"}]},
        LOGS_PARAMS,
    )
    with lam_stub, logs_stub:
        results = _remote(lam, logs)
    answer, _skipped, logs_result = results
    assert not answer.ok
    assert answer.error == (
        "Runtime.ImportModuleError: Unable to import module 'lambdas.ok.handler': No module named 'tinydep'"
    )
    assert answer.traceback_tail is not None and "No module named 'tinydep'" in answer.traceback_tail
    assert logs_result.case == "logs" and not logs_result.ok
    assert "/aws/lambda/acme-test-ok logged 1 ImportModuleError event(s)" in (logs_result.error or "")


def test_remote_import_error_in_log_tail_without_function_error_still_fails() -> None:
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response(
        "invoke",
        _invoke_response({"value": 42}, log="[ERROR] Runtime.ImportModuleError: Unable to import module 'x'"),
        INVOKE_PARAMS,
    )
    logs_stub.add_response("filter_log_events", {"events": []}, LOGS_PARAMS)
    with lam_stub, logs_stub:
        results = _remote(lam, logs)
    assert not results[0].ok and results[0].summary == "function error"


def test_remote_response_mismatch() -> None:
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response("invoke", _invoke_response({"value": 7}), INVOKE_PARAMS)
    logs_stub.add_response("filter_log_events", {"events": []}, LOGS_PARAMS)
    with lam_stub, logs_stub:
        results = _remote(lam, logs)
    assert results[0].summary == "response mismatch" and results[0].error == "expected value == 42, got 7"


def test_remote_without_log_group_is_not_an_error() -> None:
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response("invoke", _invoke_response({"value": 42}), INVOKE_PARAMS)
    logs_stub.add_client_error(
        "filter_log_events", "ResourceNotFoundException", "no group", expected_params=LOGS_PARAMS
    )
    with lam_stub, logs_stub:
        results = _remote(lam, logs)
    assert all(r.ok for r in results)


def test_remote_logs_access_denied_is_a_verify_error() -> None:
    lam, lam_stub, logs, logs_stub = _stubbed()
    lam_stub.add_response("invoke", _invoke_response({"value": 42}), INVOKE_PARAMS)
    logs_stub.add_client_error("filter_log_events", "AccessDeniedException", "nope", expected_params=LOGS_PARAMS)
    with lam_stub, logs_stub, pytest.raises(VerifyError, match="cannot read the logs of acme-test-ok"):
        _remote(lam, logs)


# ---------------------------------------------------------------------------
# Isolation: deployed code sees no credentials; only our and trusted layers run


def _deploy(
    lam: Any, s3: Any, role: str, targets: Targets, layers: Mapping[str, Mapping[str, str]], **extra: Any
) -> list[str]:
    """Publish each layer (name -> files) and a function using them all, behind `live`."""
    arns = []
    for name, files in layers.items():
        data = zip_of(files)
        key = f"lambda/layer-{hashlib.sha256(data).hexdigest()}.zip"
        s3.put_object(Bucket=targets.bucket, Key=key, Body=data)
        made = lam.publish_layer_version(LayerName=name, Content={"S3Bucket": targets.bucket, "S3Key": key})
        arns.append(made["LayerVersionArn"])
    code = zip_of(extra.pop("code"))
    key = f"lambda/function-{hashlib.sha256(code).hexdigest()}.zip"
    s3.put_object(Bucket=targets.bucket, Key=key, Body=code)
    fn = targets.functions[0]
    lam.create_function(
        FunctionName=fn.name,
        Runtime="python3.12",
        Role=role,
        Handler=fn.handler,
        Code={"S3Bucket": targets.bucket, "S3Key": key},
        Layers=arns,
        **extra,
    )
    version = lam.publish_version(FunctionName=fn.name)["Version"]
    lam.create_alias(FunctionName=fn.name, Name="live", FunctionVersion=version)
    return arns


def test_deployed_sandbox_sees_no_host_credentials(
    tmp_path: Path,
    lam: Any,
    s3: Any,
    role: str,
    stack_targets: Targets,
    python312: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leak_file = tmp_path / "leak" / "leak.jsonl"
    leak.let_leak_file_out(monkeypatch, leak_file)
    _deploy(
        lam,
        s3,
        role,
        stack_targets,
        {stack_targets.layer_name: leak.LAYER},
        code=leak.FUNCTION,
        Environment={"Variables": {"LEAK_FILE": str(leak_file)}},
    )
    leak.set_host_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.delenv("AWS_PROFILE")  # the deployer's own client must still find moto's credentials
    env = EnvConfig(name="staging", region=REGION, verify=VerifySettings(smoke={"ok": leak.CASES}))
    with leak.deployer_process():
        report = verify.verify_deployed(env, stack_targets, python=python312, fetch=NoUrl())
    assert report.ok, report.problems()
    for record in leak.assert_no_leak(leak_file, python=python312, network=False):
        assert record["boto3"] is None


def test_layer_not_ours_runs_only_when_trusted(
    tmp_path: Path,
    lam: Any,
    s3: Any,
    role: str,
    stack_targets: Targets,
    python312: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "out" / "stranger-ran"
    leak.let_leak_file_out(monkeypatch, marker)  # the jail hides /tmp: the marker's folder is let through
    stranger = {"python/stranger/__init__.py": f"open({str(marker)!r}, 'w').close()\n"}
    ours = {"python/tinydep/__init__.py": "VALUE = 42\n"}
    arns = _deploy(
        lam,
        s3,
        role,
        stack_targets,
        {stack_targets.layer_name: ours, "someone-elses-layer": stranger},
        code={
            "lambdas/__init__.py": "",
            "lambdas/ok/__init__.py": "",
            "lambdas/ok/handler.py": HANDLER + "import stranger\n",
        },
        Environment={"Variables": {"CUSTOM": "deployed"}},
    )
    env = EnvConfig(name="staging", region=REGION, verify=VerifySettings(smoke=SMOKE))
    with pytest.raises(VerifyError) as info:
        verify.verify_deployed(env, stack_targets, python=python312, fetch=NoUrl())
    assert info.value.message.startswith(f"acme-test-ok uses layer(s) {arns[1]}, which are not acme-test-deps")
    assert "deploy.environments.staging.verify.trusted_layers" in info.value.message
    assert not marker.exists()  # refused before anything ran
    trusting = EnvConfig(
        name="staging", region=REGION, verify=VerifySettings(smoke=SMOKE, trusted_layers=(arns[1].rpartition(":")[0],))
    )
    assert verify.verify_deployed(trusting, stack_targets, python=python312, fetch=NoUrl()).ok
    assert marker.exists()


def test_remote_invoke_is_sent_once_and_outwaits_the_function() -> None:
    """Invoke is not idempotent: no automatic retry, and a read timeout past the function's timeout."""
    from deploy.aws import calls

    seen: dict[str, Any] = {}

    def hook(service: str, client: Any) -> None:
        if service != "lambda":
            return
        seen["retries"] = client.meta.config.retries
        seen["read_timeout"] = client.meta.config.read_timeout
        stub = Stubber(client)
        stub.add_response("invoke", _invoke_response({"value": 42}), INVOKE_PARAMS)
        stub.activate()

    _, _, logs, logs_stub = _stubbed()
    logs_stub.add_response("filter_log_events", {"events": []}, LOGS_PARAMS)
    env = EnvConfig(name="staging", region=REGION)
    with logs_stub, calls.client_hook(hook):
        out = verify.remote_check(env, FN, CASES[:1], {}, logs=logs, now_ms=lambda: 1_000_000, function_timeout_s=300)
    assert [r.ok for r in out] == [True]
    assert seen["retries"] == {"mode": "standard", "total_max_attempts": 1}
    assert seen["read_timeout"] == 330


def test_a_gradual_rollout_verifies_the_new_version_not_the_one_the_alias_names(
    tmp_path: Path, stack: Stack, verify_env: EnvConfig, python312: Path
) -> None:
    """Mid-canary the alias names the old version and gives the new one a weight: verify must run the new one."""
    broken = artifact_of(
        tmp_path,
        "function",
        zip_of(
            {
                "lambdas/__init__.py": "",
                "lambdas/ok/__init__.py": "",
                "lambdas/ok/handler.py": "raise ImportError('v2')\n",
            }
        ),
    )
    stack.s3.put_object(Bucket=stack.targets.bucket, Key=broken.s3_key, Body=broken.path.read_bytes())
    name = stack.targets.functions[0].name
    stack.lam.update_function_code(FunctionName=name, S3Bucket=stack.targets.bucket, S3Key=broken.s3_key)
    new = stack.lam.publish_version(FunctionName=name)["Version"]
    stack.lam.update_alias(FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {new: 0.1}})

    old_report = verify.verify_deployed(verify_env, stack.targets, python=python312, fetch=NoUrl())
    assert [r.code_sha256 for r in old_report.functions] == [stack.code.code_sha256]
    report = verify.verify_deployed(
        verify_env, stack.targets, python=python312, fetch=NoUrl(), qualifiers={name: new}, expected_function=broken
    )
    [result] = report.functions
    assert result.code_sha256 == broken.code_sha256
    assert not report.ok and "v2" in (result.error or "")

"""``inv invoke`` below the task: events, the answer, the deployed bytes in the sandbox (moto), and the
real-AWS path through Lambda's Invoke (Stubber: moto's Lambda runs nothing without Docker)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from deploy import invoke, invoke_result
from deploy.aws.publish import describe
from deploy.config import EnvConfig, FunctionTarget, Paths, SmokeCase, VerifySettings
from deploy.context import RunContext
from deploy.errors import ConfigError, HandlerError, VerifyError
from deploy.run import day_two
from tests.aws.test_verify_deployed import NoUrl, artifact_of, zip_of
from tests.targets import make_targets

REGION = "us-east-1"
HANDLER = """
import logging
import os
import tinydep

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

def handler(event, context):
    print("handler got", json_dumps(event))
    logger.info("request %s", context.aws_request_id)
    if event.get("fail"):
        raise ValueError("asked to fail: " + str(event["fail"]))
    return {"value": tinydep.VALUE, "custom": os.environ.get("CUSTOM"), "echo": event, "name": context.function_name}

def json_dumps(value):
    import json
    return json.dumps(value, sort_keys=True)
"""
SMOKE = {"ok": (SmokeCase(name="health", event={"path": "/health"}),)}


# ----------------------------------------------------------------------------- events


def test_event_from_a_file_stdin_or_a_smoke_name(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"a": [1, 2]}')
    assert invoke.load_event(str(path), key="ok", smoke=SMOKE).payload == {"a": [1, 2]}
    assert invoke.load_event("-", key="ok", smoke=SMOKE, stdin=io.StringIO('"text"')).payload == "text"
    by_name = invoke.load_event("health", key="ok", smoke=SMOKE)
    assert (by_name.payload, by_name.source) == ({"path": "/health"}, "smoke event 'health' from invoke.yaml")
    assert invoke.load_event(None, key="ok", smoke=SMOKE).payload == {}


def test_an_event_that_is_not_json_is_refused_naming_the_file_and_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": oops\n}\n')
    with pytest.raises(ConfigError) as err:
        invoke.load_event(str(path), key="ok", smoke=SMOKE)
    assert f"event file {path} is not JSON: line 3, column 8: Expecting value" in str(err.value)
    assert err.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"the event on stdin is not JSON: line 1, column 1"):
        invoke.load_event("-", key="ok", smoke=SMOKE, stdin=io.StringIO("action: all"))
    nan = tmp_path / "nan.json"
    nan.write_text('{"x": NaN}')
    with pytest.raises(ConfigError, match=r"NaN is not JSON"):
        invoke.load_event(str(nan), key="ok", smoke=SMOKE)


def test_a_missing_event_file_or_unknown_smoke_name_says_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        invoke.load_event("helth", key="ok", smoke=SMOKE)
    assert "--event 'helth': no such file, and no smoke event of that name for ok; did you mean 'health'?" in str(
        err.value
    )
    assert "(its smoke events: health)" in str(err.value)
    with pytest.raises(ConfigError, match=r"no such file"):
        invoke.load_event(str(tmp_path / "missing.json"), key="ok", smoke=SMOKE)
    with pytest.raises(ConfigError, match=r"is not a regular file"):
        invoke.load_event(str(tmp_path), key="ok", smoke=SMOKE)


def test_a_bad_event_file_is_refused_before_the_function_is_even_looked_up(tmp_path: Path) -> None:
    """The environment here has no Terraform folder: looking the function up would fail differently."""
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    env = EnvConfig(name="test", region=REGION, paths=Paths(root=tmp_path / "nothing"))
    with pytest.raises(ConfigError, match=r"is not JSON: line 1, column 2"):
        day_two.invoke(RunContext.create(env), function="ok", event=str(bad))


def test_an_unknown_function_key_names_the_closest_and_the_known() -> None:
    known = {k: FunctionTarget(key=k, name=f"acme-{k}", handler="h.h") for k in ("api", "cleanup", "db_sync")}
    with pytest.raises(ConfigError) as err:
        invoke.function_target("cleanpu", known)
    assert "unknown function 'cleanpu'; did you mean 'cleanup'? (functions: api, cleanup, db_sync)" in str(err.value)
    assert invoke.function_target("acme-api", known).key == "api"  # its deployed name works too


# ----------------------------------------------------------------------------- the deployed bytes, on moto


class Deployed:
    """One function behind ``live`` as attach leaves it: code and layer from S3, a version, the alias."""

    def __init__(self, tmp_path: Path, lam: Any, s3: Any, role: str) -> None:
        self.lam, self.s3 = lam, s3
        self.targets = make_targets(
            "test",
            (FunctionTarget(key="ok", name="acme-test-ok", handler="lambdas.ok.handler.handler"),),
            bucket="acme-invoke-artifacts",
        )
        s3.create_bucket(Bucket=self.targets.bucket)
        self.layer = artifact_of(tmp_path, "layer", zip_of({"python/tinydep/__init__.py": "VALUE = 42\n"}))
        self.code = artifact_of(
            tmp_path,
            "function",
            zip_of({"lambdas/__init__.py": "", "lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": HANDLER}),
        )
        for art in (self.layer, self.code):
            s3.put_object(Bucket=self.targets.bucket, Key=art.s3_key, Body=art.path.read_bytes())
        made = lam.publish_layer_version(
            LayerName=self.targets.layer_name,
            Description=describe(self.layer),
            Content={"S3Bucket": self.targets.bucket, "S3Key": self.layer.s3_key},
        )
        fn = self.targets.functions[0]
        lam.create_function(
            FunctionName=fn.name,
            Runtime="python3.12",
            Role=role,
            Handler=fn.handler,
            Code={"S3Bucket": self.targets.bucket, "S3Key": self.code.s3_key},
            Layers=[made["LayerVersionArn"]],
            Environment={"Variables": {"CUSTOM": "deployed"}},
        )
        self.version = lam.publish_version(FunctionName=fn.name)["Version"]
        lam.create_alias(FunctionName=fn.name, Name="live", FunctionVersion=self.version)


@pytest.fixture
def deployed(tmp_path: Path, lam: Any, s3: Any, role: str) -> Deployed:
    return Deployed(tmp_path, lam, s3, role)


@pytest.fixture
def invoke_env(tmp_path: Path) -> EnvConfig:
    return EnvConfig(name="test", region=REGION, verify=VerifySettings(smoke=SMOKE), paths=Paths(root=tmp_path))


def _run(env: EnvConfig, stack: Deployed, payload: Any) -> invoke_result.InvokeResult:
    event = invoke.Event(payload=payload, source="test")
    return invoke.run_alias_bytes(env, stack.targets, stack.targets.functions[0], event, fetch=NoUrl())


def test_the_alias_bytes_run_in_the_sandbox_with_the_functions_variables(
    deployed: Deployed, invoke_env: EnvConfig
) -> None:
    result = _run(invoke_env, deployed, {"q": [1]})
    assert result.failure is None, result.failure
    assert result.response == {"value": 42, "custom": "deployed", "echo": {"q": [1]}, "name": "acme-test-ok"}
    assert result.where == "sandbox: deployed bytes"
    assert f"version {deployed.version}, CodeSha256 {deployed.code.code_sha256}, checked" in result.detail
    assert "only echoes the event back" in result.detail
    assert 'handler got {"q": [1]}' in result.logs  # the handler's print: its log, not its answer
    # logger.info as Lambda's runtime writes it: level, time, request id, message.
    info = next(line for line in result.logs.splitlines() if line.startswith("[INFO]"))
    _level, moment, request_id, message = info.split("\t")
    assert moment.endswith("Z") and message == f"request {request_id}"
    assert result.init_ms is not None and result.duration_ms is not None


def test_bytes_that_are_not_the_alias_code_sha256_are_refused(deployed: Deployed, invoke_env: EnvConfig) -> None:
    deployed.s3.put_object(Bucket=deployed.targets.bucket, Key=deployed.code.s3_key, Body=b"tampered")
    with pytest.raises(VerifyError, match=r"does not match CodeSha256"):
        _run(invoke_env, deployed, {})


def test_a_handler_error_gives_its_type_message_and_traceback_tail(
    deployed: Deployed, invoke_env: EnvConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _run(invoke_env, deployed, {"fail": "please"})
    assert result.failure is not None
    assert (result.failure.error_type, result.failure.message) == ("ValueError", "asked to fail: please")
    invoke_result.show(result)
    out = json.loads(capsys.readouterr().out)
    assert out["errorType"] == "ValueError" and out["errorMessage"] == "asked to fail: please"
    with pytest.raises(HandlerError) as err:
        result.raise_for_failure()
    assert err.value.exit_code == 17
    message = str(err.value)
    assert message.startswith("acme-test-ok raised ValueError: asked to fail: please\n")
    # The handler's own frame, at the path Lambda shows; not the sandbox's runner, nor this machine's cache.
    assert 'File "/var/task/lambdas/ok/handler.py", line 13, in handler' in message
    assert "sandbox_runner" not in message and str(invoke_env.paths.build) not in message


# ----------------------------------------------------------------------------- real AWS: Invoke with LogType=Tail


def _payload(data: Any) -> StreamingBody:
    raw = json.dumps(data).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _tail(*lines: str) -> str:
    return base64.b64encode("\n".join(lines).encode()).decode()


REPORT = (
    "REPORT RequestId: 8f5c\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t"
    "Max Memory Used: 70 MB\tInit Duration: 456.70 ms"
)


def _aws_invoke(responses: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> invoke_result.InvokeResult:
    lam = boto3.client("lambda", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(lam)
    for operation, response, params in responses:
        stub.add_response(operation, response, params)
    targets = make_targets(
        "staging", (FunctionTarget(key="api", name="acme-staging-api", handler="h.handler"),), layer_name="acme-deps"
    )
    env = EnvConfig(name="staging", region=REGION)
    with stub:
        result = invoke.invoke_deployed(
            env, targets, targets.functions[0], invoke.Event(payload={"q": 1}, source="test"), emulator=False, lam=lam
        )
    stub.assert_no_pending_responses()
    return result


CONFIG = (
    "get_function_configuration",
    {"Timeout": 30, "Version": "7"},
    {"FunctionName": "acme-staging-api", "Qualifier": "live"},
)
INVOKE = {
    "FunctionName": "acme-staging-api",
    "Qualifier": "live",
    "InvocationType": "RequestResponse",
    "LogType": "Tail",
    "Payload": b'{"q": 1}',
}


def test_on_aws_the_live_alias_is_invoked_with_its_log_tail() -> None:
    answer = {
        "StatusCode": 200,
        "ExecutedVersion": "7",
        "Payload": _payload({"ok": True}),
        "LogResult": _tail("START RequestId: 8f5c Version: 7", "[INFO]\tT\t8f5c\thello", "END RequestId: 8f5c", REPORT),
    }
    result = _aws_invoke([CONFIG, ("invoke", answer, INVOKE)])
    assert result.response == {"ok": True} and result.failure is None
    assert (result.init_ms, result.duration_ms) == (456.7, 12.34)
    assert "[INFO]\tT\t8f5c\thello" in result.logs
    assert result.where == "lambda" and "version 7" in result.detail


def test_on_aws_a_function_error_carries_lambdas_error_document() -> None:
    answer = {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "Payload": _payload(
            {
                "errorType": "KeyError",
                "errorMessage": "'id'",
                "stackTrace": ['  File "/var/task/app.py", line 3, in handler\n', "    return event['id']\n"],
            }
        ),
        "LogResult": _tail("[ERROR] KeyError: 'id'", REPORT.replace("\tInit Duration: 456.70 ms", "")),
    }
    result = _aws_invoke([CONFIG, ("invoke", answer, {**INVOKE, "Payload": ANY})])
    assert result.failure == invoke_result.Failure(
        error_type="KeyError",
        message="'id'",
        traceback_tail="  File \"/var/task/app.py\", line 3, in handler\n    return event['id']\n",
    )
    assert result.init_ms is None  # a warm environment: no init
    with pytest.raises(HandlerError, match=r"acme-staging-api raised KeyError: 'id'\n.*line 3, in handler"):
        result.raise_for_failure()


def test_a_handler_that_does_not_import_is_lambdas_import_error() -> None:
    raw = {
        "import_ms": 12.0,
        "error_type": "Runtime.ImportModuleError",
        "error": "Runtime.ImportModuleError: Unable to import module 'app.main': No module named 'fastapi'",
        "traceback_tail": "ModuleNotFoundError: No module named 'fastapi'\n",
    }
    result = invoke_result.from_runner(raw, function="acme-api", where="sandbox: built zips", detail="", logs="")
    assert result.failure == invoke_result.Failure(
        error_type="Runtime.ImportModuleError",
        message="Unable to import module 'app.main': No module named 'fastapi'",
        traceback_tail="ModuleNotFoundError: No module named 'fastapi'\n",
    )
    assert result.init_ms == 12.0 and result.duration_ms is None


def test_runner_frames_and_cache_paths_become_lambdas() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/x/sandbox_runner.py", line 140, in run\n'
        "    entry = fn(event)\n"
        "            ^^^^^^^^^\n"
        '  File "/cache/task/app/main.py", line 3, in handler\n'
        "    import numpy\n"
        '  File "/cache/opt/python/numpy/__init__.py", line 1, in <module>\n'
        "ImportError: boom\n"
    )
    assert invoke_result.as_on_lambda(
        text, task_root="/cache/task", opt="/cache/opt", runner="/x/sandbox_runner.py"
    ) == (
        "Traceback (most recent call last):\n"
        '  File "/var/task/app/main.py", line 3, in handler\n'
        "    import numpy\n"
        '  File "/opt/python/numpy/__init__.py", line 1, in <module>\n'
        "ImportError: boom\n"
    )


def test_a_layer_nobody_vouched_for_is_not_run(deployed: Deployed, invoke_env: EnvConfig) -> None:
    """Another layer on the function (not ours, not in verify.trusted_layers): its code is not run."""
    other = deployed.lam.publish_layer_version(
        LayerName="someone-elses", Content={"ZipFile": zip_of({"python/x.py": "import os\n"})}
    )["LayerVersionArn"]
    name = deployed.targets.functions[0].name
    current = deployed.lam.get_function_configuration(FunctionName=name)["Layers"][0]["Arn"]
    deployed.lam.update_function_configuration(FunctionName=name, Layers=[current, other])
    version = deployed.lam.publish_version(FunctionName=name)["Version"]
    deployed.lam.update_alias(FunctionName=name, Name="live", FunctionVersion=version)
    with pytest.raises(VerifyError, match=r"someone-elses.*not acme-test-deps of this account"):
        _run(invoke_env, deployed, {})

"""The sandbox runs real zips under the runtime's interpreter: every failure Lambda would show, shown here first."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from deploy import verify
from deploy.artifact import Artifact
from deploy.config import EnvConfig, FunctionTarget, SmokeCase, VerifySettings
from deploy.errors import ConfigError, VerifyError
from deploy.verify import sandbox
from deploy.verify.extracted import ExtractionCache
from tests.sample_app import SAMPLE, SAMPLE_SANDBOX_ENV, SAMPLE_SMOKE, sample_env
from tests.targets import make_targets

HOST_ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
# The other architecture's ELF machine number: what a wrong-platform wheel slips into a layer.
FOREIGN = {"x86_64": (183, "aarch64"), "arm64": (62, "x86_64")}[HOST_ARCH]

OK_HANDLER = """
import os, sys
import tinydep

def handler(event, context):
    print("handler output must not corrupt the report")
    return {
        "value": tinydep.VALUE,
        "echo": event.get("echo"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env_name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "handler_env": os.environ["_HANDLER"],
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "database_url": os.environ["DATABASE_URL"],
        "custom": os.environ.get("CUSTOM"),
        "sys_path": sys.path,
    }
"""


@pytest.fixture(scope="module")
def python312() -> Path:
    # No skip: a machine that cannot verify must say so, as the task would.
    return verify.find_runtime_python("3.12")


def make_zip(path: Path, files: Mapping[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def artifact(path: Path, kind: str) -> Artifact:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Artifact(
        kind=kind,  # type: ignore[arg-type]
        identity=digest[:16],
        path=path,
        sha256=digest,
        zipped_size=path.stat().st_size,
        unzipped_size=0,
        runtime="python3.12",
        architecture=HOST_ARCH,
    )


def zip_artifact(path: Path, files: Mapping[str, str | bytes], kind: str) -> Artifact:
    """A small zip with ``files`` and the Artifact a build would describe it with."""
    return artifact(make_zip(path, files), kind)


def layer_zip(tmp_path: Path, extra: Mapping[str, str | bytes] | None = None) -> Artifact:
    files: dict[str, str | bytes] = {"python/tinydep/__init__.py": "VALUE = 42\n"}
    files.update(extra or {})
    return artifact(make_zip(tmp_path / "layer.zip", files), "layer")


def function_zip(tmp_path: Path, modules: Mapping[str, str]) -> Artifact:
    files: dict[str, str | bytes] = {"lambdas/__init__.py": "", "VERSION": "1.2.3\n"}
    files.update(modules)
    return artifact(make_zip(tmp_path / "function.zip", files), "function")


def env_with(smoke: Mapping[str, tuple[SmokeCase, ...]] | None = None) -> EnvConfig:
    # An endpoint keeps sandbox_environment from looking up the developer's real credentials.
    return EnvConfig(
        name="test",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        architecture=HOST_ARCH,
        # The sample app's forced variables (invoke.yaml verify.sandbox_env): DATABASE_URL for every function.
        verify=VerifySettings(smoke=dict(smoke or {}), sandbox_env=SAMPLE_SANDBOX_ENV),
    )


def fn(key: str = "ok", handler: str = "lambdas.ok.handler.handler") -> FunctionTarget:
    return FunctionTarget(key=key, name=f"bluemoxon-test-{key}", handler=handler)


ECHO = (SmokeCase(name="echo", event={"echo": "hi"}, expect={"equals": {"value": 42, "echo": "hi"}}),)


def run_one(
    tmp_path: Path,
    python: Path,
    *,
    modules: Mapping[str, str],
    handler: str = "lambdas.ok.handler.handler",
    smoke: tuple[SmokeCase, ...] = ECHO,
    layer_extra: Mapping[str, str | bytes] | None = None,
    **kwargs: Any,
) -> verify.FunctionVerify:
    report = verify.verify_local(
        env_with({"ok": smoke}),
        [fn(handler=handler)],
        layer=layer_zip(tmp_path, layer_extra),
        function=function_zip(tmp_path, modules),
        python=python,
        **kwargs,
    )
    assert report.mode == "local"
    assert len(report.functions) == 1
    assert report.ok == report.functions[0].ok
    return report.functions[0]


OK_MODULES = {"lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": OK_HANDLER}


# ---------------------------------------------------------------------------
# The sandbox


def test_a_cached_tree_tampered_after_extraction_is_not_what_verify_runs(tmp_path: Path, python312: Path) -> None:
    """The extraction cache is reused across runs; a handler edited in it (same size, mtime set back)
    must not be what the next verify runs: it runs the zip's bytes, extracted again."""
    trees = ExtractionCache(root=tmp_path / "extracted")
    layer = layer_zip(tmp_path)
    function = function_zip(tmp_path, OK_MODULES)

    def run() -> verify.FunctionVerify:
        report = verify.verify_local(
            env_with({"ok": ECHO}), [fn()], layer=layer, function=function, python=python312, trees=trees
        )
        return report.functions[0]

    assert run().ok
    handler = trees.root / function.sha256 / "task" / "lambdas" / "ok" / "handler.py"
    before = handler.stat()
    text = handler.read_text()
    tampered = text.replace('"value": tinydep.VALUE', '"value": 666'.ljust(22))
    assert len(tampered) == len(text) and tampered != text
    handler.write_text(tampered)
    os.utime(handler, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = run()
    assert result.ok, result.problems()  # the handler answered 42 again, not 666
    assert handler.read_text() == text


def test_healthy_function_imports_and_answers(tmp_path: Path, python312: Path) -> None:
    result = run_one(tmp_path, python312, modules=OK_MODULES, environment={"ok": {"CUSTOM": "from-config"}})
    assert result.ok, result.problems()
    assert result.error is None
    assert result.import_ms is not None and result.import_ms > 0
    [case] = result.results
    assert case.ok and case.case == "echo" and case.summary == "ok"


def test_sandbox_is_lambda_shaped_and_isolated(tmp_path: Path, python312: Path) -> None:
    """Check what the handler saw: Lambda's variables and path order, and none of the developer's site-packages."""
    seen: dict[str, Any] = {}
    original = sandbox.check_expect

    def capture(expect: Mapping[str, Any], response: Any) -> list[str]:
        seen.update(response)
        return original(expect, response)

    sandbox.check_expect = capture  # type: ignore[assignment]
    try:
        result = run_one(tmp_path, python312, modules=OK_MODULES, environment={"ok": {"CUSTOM": "from-config"}})
    finally:
        sandbox.check_expect = original  # type: ignore[assignment]
    assert result.ok, result.problems()
    assert seen["function_name"] == seen["env_name"] == "bluemoxon-test-ok"
    assert seen["handler_env"] == "lambdas.ok.handler.handler"
    assert 0 < seen["remaining_ms"] <= verify.DEFAULT_TIMEOUT_S * 1000
    assert seen["custom"] == "from-config"
    assert seen["database_url"].startswith("sqlite:///") and seen["database_url"].endswith("sandbox.db")
    path = seen["sys_path"]
    task_root = seen["task_root"]
    assert path[0] == task_root
    assert path[1].endswith("opt/python/lib/python3.12/site-packages")
    assert path[2].endswith("opt/python")
    assert not any("site-packages" in p and "opt/python" not in p for p in path), path


def test_handler_module_missing(tmp_path: Path, python312: Path) -> None:
    result = run_one(tmp_path, python312, modules=OK_MODULES, handler="lambdas.nope.handler.handler")
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("Runtime.ImportModuleError: Unable to import module 'lambdas.nope.handler'")
    assert "No module named 'lambdas.nope'" in result.error
    assert result.results == ()


def test_malformed_handler_name(tmp_path: Path, python312: Path) -> None:
    result = run_one(tmp_path, python312, modules=OK_MODULES, handler="handler")
    assert not result.ok
    assert (result.error or "").startswith("Runtime.MalformedHandlerName: Bad handler 'handler'")


def test_handler_attribute_typo(tmp_path: Path, python312: Path) -> None:
    result = run_one(tmp_path, python312, modules=OK_MODULES, handler="lambdas.ok.handler.handlr")
    assert not result.ok
    assert result.error is not None
    assert "handler attribute 'handlr' not found in lambdas.ok.handler" in result.error
    # The module itself imported; its time is still reported.
    assert result.import_ms is not None


def test_dependency_missing_from_layer_fails_even_if_installed_on_the_host(tmp_path: Path, python312: Path) -> None:
    import yaml  # installed for the developer; the sandbox must not see it

    assert yaml.__file__
    modules = {"lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": "import yaml\n" + OK_HANDLER}
    result = run_one(tmp_path, python312, modules=modules)
    assert not result.ok
    assert result.error == (
        "Runtime.ImportModuleError: Unable to import module 'lambdas.ok.handler': No module named 'yaml'"
    )
    assert result.traceback_tail is not None and "import yaml" in result.traceback_tail


def test_runtime_provided_boto3_is_importable(tmp_path: Path, python312: Path) -> None:
    """Lambda's runtime ships boto3 after the layers; a layer built with exclude_runtime_boto relies on it."""
    modules = {"lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": "import boto3\n" + OK_HANDLER}
    result = run_one(tmp_path, python312, modules=modules)
    assert result.ok, result.problems()


def elf_header(machine: int) -> bytes:
    # e_ident (64-bit, little endian, SysV) + e_type ET_DYN + e_machine, padded like a real header.
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HH", 3, machine) + b"\x00" * 44


def test_wrong_architecture_extension_fails_with_a_clear_error(tmp_path: Path, python312: Path) -> None:
    machine, triplet = FOREIGN
    so_name = f"_ext.cpython-312-{triplet}-linux-gnu.so"
    layer_extra = {
        "python/badmod/__init__.py": "from badmod._ext import thing\n",
        f"python/badmod/{so_name}": elf_header(machine),
    }
    modules = {"lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": "import badmod\n" + OK_HANDLER}
    result = run_one(tmp_path, python312, modules=modules, layer_extra=layer_extra)
    assert not result.ok
    assert result.error is not None
    assert "Runtime.ImportModuleError" in result.error
    assert "No module named 'badmod._ext'" in result.error
    assert f"badmod/{so_name} is a {verify._ELF_MACHINES[machine]} extension; this function runs on {HOST_ARCH}" in (
        result.error
    )


def test_handler_raising_on_the_smoke_event_is_a_failure_with_traceback(tmp_path: Path, python312: Path) -> None:
    modules = {
        "lambdas/ok/__init__.py": "",
        "lambdas/ok/handler.py": "def handler(event, context):\n    raise RuntimeError('boom: ' + event['echo'])\n",
    }
    result = run_one(tmp_path, python312, modules=modules)
    assert not result.ok
    assert result.error is None  # it imported; the case failed
    [case] = result.results
    assert not case.ok and case.summary == "handler raised"
    assert case.error == "RuntimeError: boom: hi"
    assert case.traceback_tail is not None and 'lambdas/ok/handler.py", line 2' in case.traceback_tail


def test_response_mismatch_names_function_case_expected_and_got(tmp_path: Path, python312: Path) -> None:
    smoke = (SmokeCase(name="wrong", event={"echo": "hi"}, expect={"equals": {"value": 41}}),)
    result = run_one(tmp_path, python312, modules=OK_MODULES, smoke=smoke)
    assert not result.ok
    [case] = result.results
    assert case.summary == "response mismatch"
    assert case.error == "expected value == 41, got 42"
    assert result.problems() == ["bluemoxon-test-ok [sandbox] case wrong: expected value == 41, got 42"]


def test_unserialisable_response_is_a_failure(tmp_path: Path, python312: Path) -> None:
    modules = {"lambdas/ok/__init__.py": "", "lambdas/ok/handler.py": "def handler(e, c):\n    return {1, 2}\n"}
    result = run_one(tmp_path, python312, modules=modules)
    [case] = result.results
    assert not case.ok and case.error is not None and "not JSON serializable" in case.error


def test_hanging_handler_times_out(tmp_path: Path, python312: Path) -> None:
    modules = {
        "lambdas/ok/__init__.py": "",
        "lambdas/ok/handler.py": "import threading\n\ndef handler(e, c):\n    threading.Event().wait()\n",
    }
    result = run_one(tmp_path, python312, modules=modules, timeout_s=3)
    assert not result.ok
    assert result.error == "timed out after 3 s (import or smoke events did not finish)"


def test_case_needing_unset_environment_is_skipped_not_failed(tmp_path: Path, python312: Path) -> None:
    smoke = (*ECHO, SmokeCase(name="needs", event={}, expect={"requires_env": ["NOT_SET_HERE"]}))
    result = run_one(tmp_path, python312, modules=OK_MODULES, smoke=smoke)
    assert result.ok, result.problems()
    assert [r.case for r in result.results] == ["echo", "needs"]  # reported in the order configured
    skipped = [r for r in result.results if r.skipped]
    assert [r.case for r in skipped] == ["needs"]
    assert skipped[0].skipped == "needs NOT_SET_HERE in the function's environment"


def test_several_functions_each_get_their_own_process(tmp_path: Path, python312: Path) -> None:
    modules = {
        **OK_MODULES,
        "lambdas/bad/__init__.py": "",
        "lambdas/bad/handler.py": "import not_in_layer\n",
    }
    report = verify.verify_local(
        env_with({"ok": ECHO, "bad": ECHO}),
        make_targets(
            "test",
            (fn("ok"), fn("bad", "lambdas.bad.handler.handler")),
            layer_name="bluemoxon-test-deps",
            architecture=HOST_ARCH,
        ),
        layer=layer_zip(tmp_path),
        function=function_zip(tmp_path, modules),
        python=python312,
    )
    assert not report.ok
    by_key = {f.key: f for f in report.functions}
    assert by_key["ok"].ok
    assert not by_key["bad"].ok and "No module named 'not_in_layer'" in (by_key["bad"].error or "")
    data = json.loads(json.dumps(report.to_json()))
    assert data["mode"] == "local" and data["ok"] is False and len(data["functions"]) == 2
    with pytest.raises(VerifyError, match=r"bluemoxon-test-bad: Runtime\.ImportModuleError"):
        report.raise_for_failures()


@pytest.mark.parametrize("member", ["../evil.py", "/etc/evil.py", "lambdas/../../evil.py"])
def test_unsafe_archive_member_is_refused_before_running(tmp_path: Path, python312: Path, member: str) -> None:
    layer = layer_zip(tmp_path)
    bad = artifact(make_zip(tmp_path / "function.zip", {**OK_MODULES, member: "x = 1\n"}), "function")
    with pytest.raises(VerifyError, match=r"evil\.py"):
        verify.verify_local(env_with({"ok": ECHO}), [fn()], layer=layer, function=bad, python=python312)
    assert not (tmp_path.parent / "evil.py").exists()


def test_artifact_changed_since_build_is_refused(tmp_path: Path, python312: Path) -> None:
    layer = layer_zip(tmp_path)
    function = function_zip(tmp_path, OK_MODULES)
    function.path.write_bytes(function.path.read_bytes() + b"tampered")
    with pytest.raises(VerifyError, match="does not match its manifest"):
        verify.verify_local(env_with({"ok": ECHO}), [fn()], layer=layer, function=function, python=python312)


def test_nothing_to_verify_is_an_error(tmp_path: Path, python312: Path) -> None:
    with pytest.raises(VerifyError, match="no functions"):
        verify.verify_local(
            env_with(), [], layer=layer_zip(tmp_path), function=function_zip(tmp_path, OK_MODULES), python=python312
        )


def test_foreign_architecture_with_native_code_is_refused(tmp_path: Path, python312: Path) -> None:
    other = "arm64" if HOST_ARCH == "x86_64" else "x86_64"
    machine, triplet = FOREIGN
    env = EnvConfig(name="test", region="us-east-1", endpoint_url="http://127.0.0.1:9", architecture=other)
    layer = layer_zip(tmp_path, {f"python/fast/_speed.cpython-312-{triplet}-linux-gnu.so": elf_header(machine)})
    with pytest.raises(VerifyError, match=f"cannot verify {other} artifacts with native code on a {HOST_ARCH}"):
        verify.verify_local(env, [fn()], layer=layer, function=function_zip(tmp_path, OK_MODULES), python=python312)


# ---------------------------------------------------------------------------
# Finding the runtime interpreter


def test_runtime_python_found_and_checked(python312: Path) -> None:
    assert python312.name.startswith("python3")
    assert verify._python_version_of(python312) == ("3.12", python312)


def test_runtime_python_missing_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(VerifyError) as info:
        verify.find_runtime_python("3.12", env={"PATH": str(empty), "HOME": str(tmp_path)})
    assert info.value.message == (
        "runtime python3.12 needs a Python 3.12 interpreter to verify; install it (e.g. `pyenv install 3.12`) "
        "or put it on PATH"
    )


def test_runtime_python_of_the_wrong_version_is_not_accepted(tmp_path: Path, python312: Path) -> None:
    """A `python3.12` that is really another version (a stale symlink, a shim) must not pass."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3.12"
    fake.write_text("#!/bin/sh\necho 3.11\n")
    fake.chmod(0o755)
    with pytest.raises(VerifyError, match=r"needs a Python 3\.12 interpreter"):
        verify.find_runtime_python("3.12", env={"PATH": str(bin_dir), "HOME": str(tmp_path)})


def test_runtime_python_from_pyenv_versions(tmp_path: Path, python312: Path) -> None:
    version_bin = tmp_path / ".pyenv" / "versions" / "3.12.9" / "bin"
    version_bin.mkdir(parents=True)
    (version_bin / "python3.12").symlink_to(python312)
    empty = tmp_path / "empty"
    empty.mkdir()
    found = verify.find_runtime_python("3.12", env={"PATH": str(empty), "HOME": str(tmp_path)})
    assert found == version_bin / "python3.12"


# ---------------------------------------------------------------------------
# The expectation language


def api_response(status: int, body: Any, *, b64: bool = False) -> dict[str, Any]:
    import base64

    text = json.dumps(body)
    if b64:
        text = base64.b64encode(text.encode()).decode()
    return {"statusCode": status, "headers": {}, "body": text, "isBase64Encoded": b64}


@pytest.mark.parametrize(
    ("expect", "response", "problems"),
    [
        ({"type": "dict"}, {"a": 1}, []),
        ({"type": "dict"}, [1], ["expected type dict, got list: [1]"]),
        ({"type": "int"}, True, ["expected type int, got bool: true"]),
        ({"type": "null"}, None, []),
        ({"statusCode": 200}, api_response(200, {}), []),
        (
            {"statusCode": 200},
            api_response(500, {"error": "x"}),
            ['expected statusCode 200, got 500 (body: "{\\"error\\": \\"x\\"}")'],
        ),
        ({"statusCode": 200}, "nope", ['expected a dict (for statusCode), got str: "nope"']),
        ({"keys": ["a", "b"]}, {"a": 1}, ["expected keys ['a', 'b'], missing ['b']; got keys ['a']"]),
        ({"equals": {"a": 1}}, {"a": 1, "b": 2}, []),
        (
            {"equals": {"batchItemFailures": []}},
            {"batchItemFailures": [{"itemIdentifier": "m"}]},
            ['expected batchItemFailures == [], got [{"itemIdentifier": "m"}]'],
        ),
        ({"equals": {"a": 1}}, {}, ['expected a == 1, got "<missing>"']),
        ({"numeric_values_except": ["notes"]}, {"n": 1, "f": 2.5, "notes": []}, []),
        (
            {"numeric_values_except": ["notes"]},
            {"n": 1, "flag": True},
            ["expected numeric values (except ['notes']), got non-numeric {\"flag\": true}"],
        ),
        ({"json_body_keys": ["result"]}, api_response(200, {"result": {}}), []),
        ({"json_body_keys": ["result"]}, api_response(200, {"result": 1}, b64=True), []),
        (
            {"json_body_keys": ["result"]},
            api_response(200, {"other": 1}),
            ["expected body keys ['result'], missing ['result']: {\"other\": 1}"],
        ),
        (
            {"json_body_keys": ["result"]},
            {"statusCode": 200, "body": "<html>"},
            ['expected a JSON body, but body is not JSON: "<html>"'],
        ),
        ({"json_body_keys": ["result"]}, {"statusCode": 200}, ["expected a JSON body, but response has no body"]),
        (
            {"json_body_equals": {"status": "ok"}},
            api_response(200, {"status": "down"}),
            ['expected body status == "ok", got "down"'],
        ),
        ({"json_body_equals": {"status": "ok"}}, api_response(200, [1]), ["expected a JSON object body, got [1]"]),
        ({"requires_env": ["X"], "remote": False}, None, []),
    ],
)
def test_check_expect(expect: dict[str, Any], response: Any, problems: list[str]) -> None:
    verify.validate_expect(expect, "test")
    assert verify.check_expect(expect, response) == problems


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"status": 200}, "unknown expect key(s) status"),
        ({"type": "float"}, "expect.type 'float' is not one of"),
        ({"statusCode": "200"}, "expect.statusCode must be an integer"),
        ({"keys": "result"}, "expect.keys must be a list of strings"),
        ({"equals": ["a"]}, "expect.equals must be a mapping"),
        ({"remote": "no"}, "expect.remote must be true or false"),
    ],
)
def test_validate_expect_refuses_what_it_cannot_evaluate(expect: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        verify.validate_expect(expect, "smoke case api/x")
    assert info.value.message.startswith("smoke case api/x: ")
    assert message in info.value.message


def test_bad_expectation_in_invoke_yaml_is_refused_before_anything_runs(tmp_path: Path) -> None:
    env = env_with({"ok": (SmokeCase(name="typo", event={}, expect={"statuscode": 200}),)})
    # python=None would look for an interpreter: the config error must come first, naming the case.
    with pytest.raises(ConfigError, match="smoke case ok/typo: unknown expect key"):
        verify.verify_local(env, [fn()], layer=layer_zip(tmp_path), function=function_zip(tmp_path, OK_MODULES))


def test_the_sample_apps_smoke_events_cover_its_functions_and_are_valid() -> None:
    """invoke.yaml holds the sample app's events (nothing under deploy/ names them): one key per
    function of Terraform's var.functions, every case valid and JSON."""
    from deploy.terraform import declared_functions

    assert set(SAMPLE_SMOKE) == {fn.key for fn in declared_functions(SAMPLE)}
    for key, cases in SAMPLE_SMOKE.items():
        assert cases, key
        for case in cases:
            verify.validate_expect(case.expect, f"{key}/{case.name}")
            json.dumps(case.event)
    health = SAMPLE_SMOKE["api"][0]
    assert health.event["version"] == "2.0" and health.event["requestContext"]["http"]["method"] == "GET"
    assert health.expect["statusCode"] == 200
    admin = SAMPLE_SMOKE["api"][1]
    assert admin.event["requestContext"]["http"]["method"] == "POST" and admin.event["rawPath"] == "/admin/cleanup"
    assert admin.event["headers"] == health.event["headers"]  # the YAML merge key carried them over
    cleanup = SAMPLE_SMOKE["cleanup"][0]
    assert cleanup.event == {"action": "all", "dry_run": True}
    assert (
        verify.check_expect(
            cleanup.expect, {"action": "all", "dry_run": True, "stale_sessions": 0, "deleted": 0, "notes": ["x"]}
        )
        == []
    )


def test_smoke_cases_are_invoke_yamls_and_a_function_without_any_is_only_imported() -> None:
    mine = (SmokeCase(name="mine", event={}, expect={}),)
    env = env_with({"api": mine})
    assert verify.smoke_cases(env, "api") == mine
    assert verify.smoke_cases(env, "cleanup") == ()


def test_a_smoke_key_that_is_no_deployed_function_is_refused_with_a_guess(tmp_path: Path) -> None:
    env = env_with({"ok": (SmokeCase(name="a", event={}),), "okk": (SmokeCase(name="b", event={}),)})
    with pytest.raises(ConfigError) as info:
        verify.smoke_for(env, [fn()])
    assert "unknown function 'okk'; did you mean 'ok'?" in info.value.message
    assert info.value.exit_code == 2
    # verify refuses it before looking for an interpreter or extracting anything.
    with pytest.raises(ConfigError, match="okk"):
        verify.verify_local(env, [fn()], layer=layer_zip(tmp_path), function=function_zip(tmp_path, OK_MODULES))
    assert verify.smoke_for(env_with({"ok": ()}), [fn()]) == {"ok": ()}


def test_remote_only_and_sandbox_env_protect_real_services() -> None:
    worker = {c.name: c for c in SAMPLE_SMOKE["eval_runbook_worker"]}
    assert worker["valid-record"].expect["remote"] is False
    assert SAMPLE_SANDBOX_ENV["eval_runbook_worker"]["EVAL_API_URL"] == ""
    assert SAMPLE_SANDBOX_ENV["*"]["DATABASE_URL"] == "sqlite:///{tmp}/sandbox.db"
    # Every environment inherits them from the top level of invoke.yaml.
    assert sample_env("production").verify.sandbox_env == SAMPLE_SANDBOX_ENV


def test_extraction_is_bounded_by_lambdas_250_mb(tmp_path: Path, python312: Path) -> None:
    """A 306 KB zip once expanded to 300 MiB in verify; now it is refused before writing."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("python/zeros.bin", b"\0" * (300 * 1024 * 1024))
    layer = artifact(bomb, "layer")
    with pytest.raises(VerifyError) as err:
        verify.verify_local(
            env_with({"ok": ECHO}), [fn()], layer=layer, function=function_zip(tmp_path, OK_MODULES), python=python312
        )
    assert (
        err.value.message == f"layer bomb.zip: refusing to extract {bomb}: 314572800 bytes unzipped exceeds 262144000"
    )


# --------------------------------------------------------------------------- import only, --strict


def test_a_function_without_smoke_events_is_import_only_and_strict_makes_it_an_error(
    tmp_path: Path, python312: Path
) -> None:
    from dataclasses import replace

    from rich.console import Console

    from deploy import report
    from deploy.run import show

    env = env_with({})  # no smoke events for "ok"
    args = {"layer": layer_zip(tmp_path), "function": function_zip(tmp_path, OK_MODULES), "python": python312}
    lenient = verify.verify_local(env, [fn()], **args)
    [result] = lenient.functions
    assert result.ok and result.import_only and result.import_ms is not None
    assert lenient.ok and lenient.import_only == ["bluemoxon-test-ok"]
    lenient.raise_for_failures()  # passes: only --strict refuses it

    strict = verify.verify_local(replace(env, verify=replace(env.verify, strict=True)), [fn()], **args)
    with pytest.raises(VerifyError, match=r"--strict: only imported, no smoke events: bluemoxon-test-ok") as info:
        strict.raise_for_failures()
    assert info.value.exit_code == VerifyError.exit_code

    # Shown with its own mark, never as a pass.
    assert show._verify_line(result).endswith("import only (no smoke events)")
    screen = Console(width=80, record=True, force_terminal=False, soft_wrap=True, highlight=False)
    original = report.console
    report.console = screen
    try:
        with report.item_lines(["f-imported", "f-answered"], "running") as lines:
            lines.done("f-imported", True, show._verify_line(result), import_only=True)
            lines.done("f-answered", True, "import 3 ms; echo ok; 5 ms")
    finally:
        report.console = original
    text = screen.export_text()
    assert "○ f-imported: import" in text and "✓ f-imported" not in text
    assert "✓ f-answered" in text
    (tmp_path / "answered").mkdir()
    answered = run_one(tmp_path / "answered", python312, modules=OK_MODULES)
    assert answered.ok and not answered.import_only

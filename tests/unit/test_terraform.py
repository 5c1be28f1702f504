"""deploy.terraform without real Terraform: output parsing, errors, mirror choice.

Subprocess behaviour is exercised with small fake ``terraform`` scripts written to
tmp_path, so the tests need neither Terraform nor a network.
"""

from __future__ import annotations

import dataclasses
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import terraform as tfm
from deploy.config import (
    EmulatorSettings,
    EnvConfig,
    Paths,
    RemoteCacheSettings,
    ShareSettings,
    StateSettings,
    Targets,
    VerifySettings,
)
from deploy.errors import ConfigError, TerraformError

FUNCTIONS = {
    "api": {"name": "bluemoxon-local-api", "handler": "app.main.handler"},
    "cleanup": {"name": "bluemoxon-local-cleanup", "handler": "lambdas.cleanup.handler.handler"},
    "db_sync": {"name": "bluemoxon-local-db-sync", "handler": "lambdas.db_sync.handler.handler"},
    "eval_runbook_worker": {
        "name": "bluemoxon-local-eval-runbook-worker",
        "handler": "lambdas.eval_runbook_worker.handler.handler",
    },
}


def deploy_targets(env: str = "local", **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "env": env,
        "region": "us-east-1",
        "bucket": f"bluemoxon-frontend-{env}",
        "layer_name": f"bluemoxon-{env}-deps",
        "runtime": "python3.12",
        "architecture": "x86_64",
        "alias": "live",
        "functions": json.loads(json.dumps(FUNCTIONS)),
    }
    value.update(changes)
    return value


def output_json(value: Any) -> dict[str, Any]:
    """The shape `terraform output -json` prints."""
    return {
        "deploy_targets": {"sensitive": False, "type": ["object", {}], "value": value},
        "layer_arn": {"sensitive": False, "type": "string", "value": "arn:aws:lambda:us-east-1:1:layer:x"},
    }


def fake_terraform(directory: Path, body: str) -> Path:
    """A `terraform` executable running ``body`` (Python) with ``argv`` and ``log`` defined."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "terraform"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "argv = sys.argv[1:]\n"
        f"log = open({str(directory / 'calls.log')!r}, 'a')\n"
        "log.write(' '.join(argv) + '\\n'); log.close()\n" + body
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def calls(script: Path) -> list[str]:
    log = script.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def env_config(root: Path, name: str = "local", *, local: bool = True, region: str = "us-east-1") -> EnvConfig:
    tf_dir = root / "infra" / "terraform"
    (tf_dir / "envs").mkdir(parents=True, exist_ok=True)
    (tf_dir / "envs" / f"{name}.tfvars").write_text(f'environment = "{name}"\n')
    return EnvConfig(
        name=name,
        region=region,
        emulator=EmulatorSettings(port=5055) if local else None,
        endpoint_url="http://127.0.0.1:5055" if local else None,
        profile=None if local else f"bluemoxon-{name}",
        tfvars=f"envs/{name}.tfvars",
        paths=Paths(root=root),
    )


def runner(tmp_path: Path, script: Path, *, initialised: bool = True) -> tfm.Terraform:
    cfg = env_config(tmp_path)
    # No state bucket to create: these tests run a fake terraform, not AWS.
    tf = dataclasses.replace(tfm.terraform_for(cfg, binary=script, environ={tfm.MIRROR_ENV_VAR: ""}), prepare=None)
    if initialised:
        (tf.data_dir).mkdir(parents=True, exist_ok=True)
        (tf.data_dir / "backend.hcl").write_text(tfm.backend_hcl(tf.backend))
        (tf.data_dir / "modules").mkdir(parents=True)
        (tf.data_dir / "modules" / "modules.json").write_text("{}")
        (tf.data_dir / "providers").mkdir()
    return tf


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    tfm.forget_targets()


# ---------------------------------------------------------------------------
# targets_from_outputs


def test_targets_from_terraform_output_json() -> None:
    targets = tfm.targets_from_outputs(output_json(deploy_targets()), "local")
    assert isinstance(targets, Targets)
    assert targets.bucket == "bluemoxon-frontend-local"
    assert targets.layer_name == "bluemoxon-local-deps"
    assert targets.alias == "live"
    assert [f.key for f in targets.functions] == ["api", "cleanup", "db_sync", "eval_runbook_worker"]
    assert targets.function("db_sync").name == "bluemoxon-local-db-sync"
    assert targets.function("api").handler == "app.main.handler"


def test_targets_from_bare_value() -> None:
    targets = tfm.targets_from_outputs({"deploy_targets": deploy_targets("staging")}, "staging")
    assert targets.env == "staging"
    assert targets.function("cleanup").handler == "lambdas.cleanup.handler.handler"


@pytest.mark.parametrize("outputs", [{}, {"layer_arn": {"value": "x", "type": "string"}}, output_json(None)])
def test_not_applied(outputs: dict[str, Any]) -> None:
    with pytest.raises(TerraformError, match=r"not been applied for env staging: run `inv infra\.apply --env staging`"):
        tfm.targets_from_outputs(outputs, "staging")


def test_state_of_another_environment_is_refused() -> None:
    with pytest.raises(TerraformError, match=r"state is for env 'staging', not 'production'"):
        tfm.targets_from_outputs(output_json(deploy_targets("staging")), "production")


def test_targets_are_whatever_functions_the_output_lists() -> None:
    """No function is expected by name: a removed one is simply absent, others of any name are taken."""
    value = deploy_targets()
    del value["functions"]["db_sync"]
    targets = tfm.targets_from_outputs(output_json(value), "local")
    assert [f.key for f in targets.functions] == ["api", "cleanup", "eval_runbook_worker"]

    other = deploy_targets(
        functions={
            "notifier": {"name": "acme-local-notifier", "handler": "notify.send", "sources": ["notify"]},
            "reporter": {"name": "acme-local-reporter", "handler": "reports.handler", "sources": ["reports.py"]},
        }
    )
    targets = tfm.targets_from_outputs(output_json(other), "local")
    assert [(f.key, f.name, f.handler, f.sources) for f in targets.functions] == [
        ("notifier", "acme-local-notifier", "notify.send", ("notify",)),
        ("reporter", "acme-local-reporter", "reports.handler", ("reports.py",)),
    ]
    with pytest.raises(ConfigError, match=r"unknown function 'notifer'; did you mean 'notifier'\?"):
        targets.function("notifer")


def test_no_function_or_two_with_one_name_are_refused() -> None:
    with pytest.raises(TerraformError, match="functions must be a non-empty object"):
        tfm.targets_from_outputs(output_json(deploy_targets(functions={})), "local")
    twice = deploy_targets()
    twice["functions"]["db_sync2"] = dict(twice["functions"]["db_sync"])
    with pytest.raises(TerraformError, match="db_sync and db_sync2 are one function, bluemoxon-local-db-sync"):
        tfm.targets_from_outputs(output_json(twice), "local")
    bad = deploy_targets()
    bad["functions"]["api"]["sources"] = "app"
    with pytest.raises(TerraformError, match=r"functions.api.sources must be a list of paths"):
        tfm.targets_from_outputs(output_json(bad), "local")


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"bucket": ""}, "bucket"), ({"layer_name": 3}, "layer_name"), ({"region": None}, "region")],
)
def test_bad_field_is_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(TerraformError, match=f"deploy_targets.{field} must be a non-empty string"):
        tfm.targets_from_outputs(output_json(deploy_targets(**changes)), "local")


def test_bad_function_handler_is_named() -> None:
    value = deploy_targets()
    value["functions"]["api"]["handler"] = ""
    with pytest.raises(TerraformError, match=r"deploy_targets.functions.api.handler"):
        tfm.targets_from_outputs(output_json(value), "local")


# ---------------------------------------------------------------------------
# Plugin mirror and init arguments


def test_mirror_used_when_present(tmp_path: Path) -> None:
    assert tfm.resolve_plugin_mirror({}, default=tmp_path) == tmp_path
    assert tfm.init_args(tmp_path) == ["init", "-input=false", "-no-color", "-plugin-dir", str(tmp_path)]


def test_normal_init_when_mirror_absent(tmp_path: Path) -> None:
    mirror = tfm.resolve_plugin_mirror({}, default=tmp_path / "absent")
    assert mirror is None
    assert "-plugin-dir" not in tfm.init_args(mirror)


def test_mirror_from_environment_wins(tmp_path: Path) -> None:
    own = tmp_path / "mirror"
    own.mkdir()
    assert tfm.resolve_plugin_mirror({tfm.MIRROR_ENV_VAR: str(own)}, default=tmp_path) == own
    assert tfm.resolve_plugin_mirror({tfm.MIRROR_ENV_VAR: ""}, default=tmp_path) is None


def test_mirror_from_environment_must_exist(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match=r"TF_PLUGIN_MIRROR=.*absent is not a directory"):
        tfm.resolve_plugin_mirror({tfm.MIRROR_ENV_VAR: str(tmp_path / "absent")})


def test_registry_unreachable_detection() -> None:
    offline = (
        "Error: Failed to query available provider packages\n"
        "Could not retrieve the list of available versions for provider hashicorp/aws: "
        "could not connect to registry.terraform.io: dial tcp: lookup registry.terraform.io: no such host"
    )
    assert tfm.registry_unreachable(offline)
    assert not tfm.registry_unreachable("Error: Unsupported argument")


def test_init_offline_without_mirror_explains(tmp_path: Path) -> None:
    script = fake_terraform(
        tmp_path / "bin",
        "sys.stderr.write('Error: Failed to query available provider packages\\n"
        "could not connect to registry.terraform.io: dial tcp: i/o timeout\\n')\nsys.exit(1)\n",
    )
    tf = runner(tmp_path, script, initialised=False)
    with pytest.raises(TerraformError, match="could not reach the provider registry") as info:
        tfm.init(tf)
    assert "TF_PLUGIN_MIRROR" in str(info.value)


def test_init_uses_mirror_and_env_data_dir(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    script = fake_terraform(tmp_path / "bin", "print(os.environ['TF_DATA_DIR'])\n")
    cfg = env_config(tmp_path)
    tf = dataclasses.replace(
        tfm.terraform_for(cfg, binary=script, environ={tfm.MIRROR_ENV_VAR: str(mirror)}), prepare=None
    )
    tfm.init(tf)
    hcl = tf.data_dir / "backend.hcl"
    assert calls(script) == [
        f"init -input=false -no-color -plugin-dir {mirror} -upgrade=false -reconfigure -backend-config={hcl}"
    ]
    assert tf.data_dir == cfg.paths.terraform / ".terraform-local"
    # The emulator's state bucket, reached on the emulator's URL with path-style S3.
    text = hcl.read_text()
    assert 'bucket = "terraform-state"' in text
    assert 'endpoints = { s3 = "http://127.0.0.1:5055" }' in text
    assert "use_path_style = true" in text


def test_remote_env_without_state_settings_is_a_config_error(tmp_path: Path) -> None:
    cfg = env_config(tmp_path, "staging", local=False, region="us-west-2")
    with pytest.raises(ConfigError, match=r"missing key deploy\.environments\.staging\.state"):
        tfm.terraform_for(cfg, binary=Path("/bin/true"), environ={tfm.MIRROR_ENV_VAR: ""})


def test_remote_backend_config_uses_profile_and_lock(tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        env_config(tmp_path, "staging", local=False, region="us-west-2"),
        state=StateSettings(bucket="tf-state-staging", key="app/terraform.tfstate"),
    )
    assert tfm.backend_config(cfg) == {
        "bucket": "tf-state-staging",
        "key": "app/terraform.tfstate",
        "region": "us-west-2",
        "encrypt": True,
        "use_lockfile": True,
        "profile": "bluemoxon-staging",
    }


# ---------------------------------------------------------------------------
# terraform_for and find_terraform


def _digest(tf: tfm.Terraform) -> str:
    """The configuration digest every run passes (deploy/terraform/fingerprint.py): of the other inputs."""
    from deploy.terraform.fingerprint import config_digest

    return config_digest(tf.workdir, tf.var_file, tf.variables)


def test_local_env_gets_endpoint_and_dummy_credentials(tmp_path: Path) -> None:
    tf = tfm.terraform_for(env_config(tmp_path), binary=Path("/bin/true"), environ={tfm.MIRROR_ENV_VAR: ""})
    assert tf.var_args() == [
        "-var-file",
        str(tmp_path / "infra/terraform/envs/local.tfvars"),
        "-var",
        "aws_endpoint=http://127.0.0.1:5055",
        "-var",
        f"deploy_config_digest={_digest(tf)}",
        "-var",
        "layer_cache_bucket=",
        "-var",
        "layer_cache_publisher_arn=",
        "-var",
        "share_account_ids=[]",
        "-var",
        "snap_start=false",
        "-var",
        "state_bucket=terraform-state",
        "-var",
        "state_key=terraform.tfstate",
        "-var",
        "trusted_layer_arns=[]",
    ]
    shell = {
        "AWS_ACCESS_KEY_ID": "real-key",
        "PATH": "/usr/bin",
        "AWS_ENDPOINT_URL": "https://elsewhere.example",
        "AWS_ENDPOINT_URL_LAMBDA": "https://lambda.elsewhere.example",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    }
    child = tf.process_env(shell)
    assert child["AWS_ACCESS_KEY_ID"] == "test"
    assert child["AWS_SECRET_ACCESS_KEY"] == "test"
    assert child["AWS_DEFAULT_REGION"] == "us-east-1"
    assert child["TF_DATA_DIR"].endswith(".terraform-local")
    # Every provider call goes to the emulator: its URL for all services, nothing in the shell overrides it.
    endpoints = {k: v for k, v in child.items() if k.startswith("AWS_ENDPOINT_URL") or k.startswith("AWS_IGNORE")}
    assert endpoints == {
        "AWS_ENDPOINT_URL": tf.variables["aws_endpoint"],
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
    }


def test_remote_env_uses_profile_and_no_endpoint(tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        env_config(tmp_path, "staging", local=False, region="us-west-2"), state=StateSettings(bucket="tf-state")
    )
    tf = tfm.terraform_for(cfg, binary=Path("/bin/true"), environ={tfm.MIRROR_ENV_VAR: ""})
    # No endpoint; the lists invoke.yaml owns are passed even when empty (a tfvars value never wins).
    assert tf.variables == {
        "deploy_config_digest": _digest(tf),
        "state_bucket": "tf-state",
        "state_key": "terraform.tfstate",
        "trusted_layer_arns": "[]",
        "share_account_ids": "[]",
        "layer_cache_bucket": "",
        "layer_cache_publisher_arn": "",
        "snap_start": "false",
    }
    child = tf.process_env({"AWS_ACCESS_KEY_ID": "real-key", "AWS_ENDPOINT_URL_S3": "https://s3.vpce.example"})
    assert child["AWS_PROFILE"] == "bluemoxon-staging"
    assert child["AWS_ACCESS_KEY_ID"] == "real-key"
    assert child["TF_DATA_DIR"].endswith(".terraform-staging")
    # AWS itself: the caller's endpoint settings (a VPC endpoint, say) are the caller's, left alone.
    assert child["AWS_ENDPOINT_URL_S3"] == "https://s3.vpce.example" and "AWS_ENDPOINT_URL" not in child


def test_snap_start_from_invoke_yaml_reaches_terraform(tmp_path: Path) -> None:
    cfg = dataclasses.replace(env_config(tmp_path), snap_start=True)
    tf = tfm.terraform_for(cfg, binary=Path("/bin/true"), environ={tfm.MIRROR_ENV_VAR: ""})
    assert tf.variables["snap_start"] == "true"
    # The digest covers it: turning SnapStart on is a configuration change `inv status` sees.
    off = tfm.terraform_for(env_config(tmp_path), binary=Path("/bin/true"), environ={tfm.MIRROR_ENV_VAR: ""})
    assert tf.variables[tfm.DIGEST_VARIABLE] != off.variables[tfm.DIGEST_VARIABLE]


def test_trusted_layers_and_shares_reach_the_ci_roles(tmp_path: Path) -> None:
    """invoke.yaml's trusted layers and share targets become the IAM conditions' variables (one source)."""
    cfg = dataclasses.replace(
        env_config(tmp_path, "staging", local=False, region="us-west-2"),
        state=StateSettings(bucket="tf-state"),
        verify=VerifySettings(
            trusted_layers=(
                "arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension:38",
                "arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension",
            )
        ),
        share=ShareSettings(accounts=("210987654321",), organization_id="o-abc123"),
        remote_cache=RemoteCacheSettings(
            bucket="bluemoxon-frontend-staging",
            publisher="arn:aws:lambda:us-west-2:111122223333:layer:bluemoxon-staging-deps",
        ),
    )
    tf = tfm.terraform_for(cfg, binary=Path("/bin/true"), environ={tfm.MIRROR_ENV_VAR: ""})
    assert tf.variables == {
        "deploy_config_digest": _digest(tf),
        "state_bucket": "tf-state",
        "state_key": "terraform.tfstate",
        "trusted_layer_arns": '["arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension"]',
        "share_account_ids": '["210987654321"]',
        "share_organization_id": "o-abc123",
        "layer_cache_bucket": "bluemoxon-frontend-staging",
        "layer_cache_publisher_arn": "arn:aws:lambda:us-west-2:111122223333:layer:bluemoxon-staging-deps",
        "snap_start": "false",
    }


def test_missing_tfvars_is_named(tmp_path: Path) -> None:
    cfg = env_config(tmp_path)
    (cfg.paths.terraform / "envs" / "local.tfvars").unlink()
    with pytest.raises(ConfigError, match=r"tfvars file .*envs/local\.tfvars for env local does not exist"):
        tfm.terraform_for(cfg, binary=Path("/bin/true"))


def test_terraform_not_on_path(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match="terraform not found on PATH"):
        tfm.find_terraform(path=str(tmp_path))


def test_terraform_binary_missing(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match=r"terraform not found at .*nope"):
        tfm.find_terraform(binary=tmp_path / "nope")


def test_terraform_too_old_names_version(tmp_path: Path) -> None:
    fake_terraform(tmp_path, "print(json.dumps({'terraform_version': '1.4.7'}))\n")
    with pytest.raises(TerraformError, match=r"terraform 1\.4\.7 at .* is too old; need >= 1\.10"):
        tfm.find_terraform(path=str(tmp_path))


def test_terraform_new_enough(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path, "print(json.dumps({'terraform_version': '1.11.4', 'platform': 'linux_amd64'}))\n")
    assert tfm.find_terraform(path=str(tmp_path)) == script
    with pytest.raises(TerraformError, match=r"need >= 1\.12"):
        tfm.find_terraform((1, 12), binary=script)


def test_the_version_is_asked_once_per_binary_and_again_when_the_file_changes(tmp_path: Path) -> None:
    body = "print(json.dumps({'terraform_version': '1.11.4'}))\n"
    script = fake_terraform(tmp_path, body)
    assert tfm.find_terraform(path=str(tmp_path)) == script
    assert tfm.find_terraform(path=str(tmp_path)) == script
    assert calls(script) == ["version -json"]
    fake_terraform(tmp_path, body.replace("1.11.4", "1.4.0") + "# replaced\n")  # same path, another file
    with pytest.raises(TerraformError, match=r"terraform 1\.4\.0 at .* is too old"):
        tfm.find_terraform(path=str(tmp_path))
    assert calls(script) == ["version -json", "version -json"]


def test_unreadable_version_output(tmp_path: Path) -> None:
    fake_terraform(tmp_path, "print('Terraform v1.11.4')\n")
    with pytest.raises(TerraformError, match="cannot read the output of `terraform version -json`"):
        tfm.find_terraform(path=str(tmp_path))


# ---------------------------------------------------------------------------
# Running commands


def test_failure_reports_last_lines_of_stderr(tmp_path: Path) -> None:
    script = fake_terraform(
        tmp_path / "bin",
        "for i in range(30):\n    sys.stderr.write(f'line {i}\\n')\nsys.exit(1)\n",
    )
    tf = runner(tmp_path, script)
    with pytest.raises(TerraformError, match=r"terraform workspace \(local\) failed \(exit 1\)") as info:
        tfm.select_workspace(tf)
    message = str(info.value)
    assert "line 29" in message
    assert "line 10" in message
    assert "line 9\n" not in message


def test_select_workspace_creates_env_workspace(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path / "bin", "")
    tfm.select_workspace(runner(tmp_path, script))
    assert calls(script) == ["workspace select -no-color -or-create local"]


# Like Terraform: `workspace select` records the selection in the data dir's `environment` file.
_RECORDS_SELECTION = (
    "if argv[:2] == ['workspace', 'select']:\n"
    "    open(os.path.join(os.environ['TF_DATA_DIR'], 'environment'), 'w').write(argv[-1])\n"
)


def test_a_workspace_already_selected_in_the_data_dir_is_not_selected_again(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path / "bin", _RECORDS_SELECTION)
    tf = runner(tmp_path, script)
    tfm.plan(tf)
    tfm.plan(tf)
    tfm.output_json(tf)
    verbs = [" ".join(c.split()[:2]) for c in calls(script)]
    assert verbs == ["workspace select", "plan -input=false", "plan -input=false", "output -json"]


@pytest.mark.parametrize("recorded", ["staging", "", None])
def test_another_or_no_selection_in_the_data_dir_selects_the_envs_workspace(
    tmp_path: Path, recorded: str | None
) -> None:
    script = fake_terraform(tmp_path / "bin", _RECORDS_SELECTION)
    tf = runner(tmp_path, script)
    if recorded is not None:
        (tf.data_dir / "environment").write_text(recorded)
    tfm.plan(tf)
    assert calls(script)[0] == "workspace select -no-color -or-create local"
    assert (tf.data_dir / "environment").read_text() == "local"


def test_a_tf_workspace_in_the_callers_shell_never_reaches_terraform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_WORKSPACE", "production")
    script = fake_terraform(
        tmp_path / "bin",
        "log = open(os.environ['TF_DATA_DIR'] + '/seen', 'a')\n"
        "log.write(os.environ.get('TF_WORKSPACE', '-') + '\\n')\n",
    )
    tf = runner(tmp_path, script)
    tfm.plan(tf)
    assert set((tf.data_dir / "seen").read_text().split()) == {"-"}


@pytest.mark.parametrize(("code", "changes"), [(0, False), (2, True)])
def test_plan_detailed_exitcode(tmp_path: Path, code: int, changes: bool) -> None:
    script = fake_terraform(tmp_path / "bin", f"sys.exit({code} if argv[0] == 'plan' else 0)\n")
    assert tfm.plan(runner(tmp_path, script)) is changes
    plan_call = calls(script)[-1]
    assert plan_call.startswith("plan -input=false")
    assert "-detailed-exitcode" in plan_call
    assert "-var aws_endpoint=http://127.0.0.1:5055" in plan_call


def test_plan_error_is_not_drift(tmp_path: Path) -> None:
    script = fake_terraform(
        tmp_path / "bin", "if argv[0] == 'plan':\n    sys.stderr.write('Error: boom\\n'); sys.exit(1)\n"
    )
    with pytest.raises(TerraformError, match="Error: boom"):
        tfm.plan(runner(tmp_path, script))


def test_uninitialised_data_dir_is_initialised_first(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path / "bin", "")
    tfm.plan(runner(tmp_path, script, initialised=False))
    assert [c.split()[0] for c in calls(script)] == ["init", "workspace", "plan"]


def test_stale_data_dir_is_reinitialised_once(tmp_path: Path) -> None:
    marker = tmp_path / "initialised"
    script = fake_terraform(
        tmp_path / "bin",
        f"marker = {str(marker)!r}\n"
        "if argv[0] == 'init':\n    open(marker, 'w').close()\n"
        "elif argv[0] == 'output' and not os.path.exists(marker):\n"
        "    sys.stderr.write('Error: Module not installed. Run \"terraform init\".\\n'); sys.exit(1)\n"
        "elif argv[0] == 'output':\n    print('{}')\n",
    )
    assert tfm.output_json(runner(tmp_path, script)) == {}
    assert [c.split()[0] for c in calls(script)] == ["workspace", "output", "init", "workspace", "output"]


def test_apply_streams_progress(tmp_path: Path) -> None:
    script = fake_terraform(
        tmp_path / "bin",
        "if argv[0] == 'apply':\n    print('aws_s3_bucket.artifacts: Creating...')\n    print('Apply complete!')\n",
    )
    lines: list[str] = []
    tfm.apply(runner(tmp_path, script), echo=lines.append)
    assert lines == ["aws_s3_bucket.artifacts: Creating...", "Apply complete!"]
    assert "-auto-approve" in calls(script)[-1]


def test_load_targets_reads_once_per_process(tmp_path: Path) -> None:
    payload = json.dumps(output_json(deploy_targets()))
    script = fake_terraform(tmp_path / "bin", f"if argv[0] == 'output':\n    print({payload!r})\n")
    cfg = env_config(tmp_path)
    tf = runner(tmp_path, script)
    first = tfm.load_targets(cfg, tf=tf)
    second = tfm.load_targets(cfg, tf=tf)
    assert first is second
    assert sum(c.startswith("output") for c in calls(script)) == 1


def test_load_targets_not_applied(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path / "bin", "if argv[0] == 'output':\n    print('{}')\n")
    with pytest.raises(TerraformError, match="has not been applied for env local"):
        tfm.load_targets(env_config(tmp_path), tf=runner(tmp_path, script))


def test_load_targets_region_must_match_invoke_yaml(tmp_path: Path) -> None:
    payload = json.dumps(output_json(deploy_targets(region="eu-west-1")))
    script = fake_terraform(tmp_path / "bin", f"if argv[0] == 'output':\n    print({payload!r})\n")
    with pytest.raises(ConfigError, match=r"invoke\.yaml says region us-east-1 but Terraform deployed to eu-west-1"):
        tfm.load_targets(env_config(tmp_path), tf=runner(tmp_path, script))


def test_state_bucket_is_prepared_even_when_the_data_dir_is_set_up(tmp_path: Path) -> None:
    """A fresh emulator has no state bucket although the data dir says `initialised`."""
    script = fake_terraform(tmp_path / "bin", "print('{}')\n")
    prepared: list[str] = []
    tf = dataclasses.replace(runner(tmp_path, script), prepare=lambda: prepared.append("bucket"))
    tfm.output_json(tf)
    assert prepared == ["bucket"]
    assert [c.split()[0] for c in calls(script)] == ["workspace", "output"]


LOST_ALIAS_ERROR = """terraform apply (local) failed (exit 1):
Error: creating Lambda Alias (live): operation error Lambda: CreateAlias, https response error StatusCode: 409, \
RequestID: X, api error ConflictException: Alias already exists: \
arn:aws:lambda:us-east-1:123456789012:function:bluemoxon-local-eval-runbook-worker:live

  with module.eval_runbook_worker.aws_lambda_alias.live[0],
  on modules/lambda/main.tf line 140, in resource "aws_lambda_alias" "live":
"""


# As an e2e run printed it (2026-12-03), with one more resource's error after it.
LOST_FUNCTION_ERROR = """terraform apply (local) failed (exit 1):
Error: creating Lambda Function (bluemoxon-local-db-sync): operation error Lambda: CreateFunction, https response \
error StatusCode: 409, RequestID: ofcFKBuv, ResourceConflictException: Function already exist: bluemoxon-local-db-sync

  with module.function["db_sync"].aws_lambda_function.this[0],
  on modules/lambda/main.tf line 60, in resource "aws_lambda_function" "this":

Error: creating IAM Role (x): AccessDenied

  with module.function["api"].aws_iam_role.this[0],
"""


def test_orphaned_alias_is_recognised() -> None:
    assert tfm.orphans(LOST_ALIAS_ERROR) == [
        ("module.eval_runbook_worker.aws_lambda_alias.live[0]", "bluemoxon-local-eval-runbook-worker/live")
    ]
    assert tfm.orphans("Error: creating Lambda Function: AccessDenied") == []


def test_orphaned_function_is_recognised_by_its_own_address() -> None:
    assert tfm.orphans(LOST_FUNCTION_ERROR, functions=True) == [
        ('module.function["db_sync"].aws_lambda_function.this[0]', "bluemoxon-local-db-sync")
    ]
    # Only where functions may be adopted (the emulator): in an AWS account the name may be someone else's.
    assert tfm.orphans(LOST_FUNCTION_ERROR) == []
    # The name must be followed by a function's address: another resource's "with" is never imported.
    elsewhere = LOST_FUNCTION_ERROR.replace('module.function["db_sync"].aws_lambda_function.this[0]', "module.x.y")
    assert tfm.orphans(elsewhere, functions=True) == []
    # Nor the address of the next diagnostic's function, an error's or a warning's.
    next_one = elsewhere.replace('module.function["api"].aws_iam_role', 'module.function["api"].aws_lambda_function')
    assert tfm.orphans(next_one, functions=True) == []
    assert tfm.orphans(next_one.replace("Error: creating IAM", "Warning: creating IAM"), functions=True) == []


def test_an_aws_environment_never_adopts_a_function(tmp_path: Path) -> None:
    """A function of that name in an AWS account may be another stack's: the apply fails, nothing imported."""
    script = fake_terraform(
        tmp_path / "bin", f"if argv[0] == 'apply':\n    sys.stderr.write({LOST_FUNCTION_ERROR!r}); sys.exit(1)\n"
    )
    cfg = dataclasses.replace(env_config(tmp_path, "staging", local=False), state=StateSettings(bucket="tf-state"))
    tf = dataclasses.replace(tfm.terraform_for(cfg, binary=script, environ={tfm.MIRROR_ENV_VAR: ""}), prepare=None)
    (tf.data_dir / "modules").mkdir(parents=True)
    (tf.data_dir / "backend.hcl").write_text(tfm.backend_hcl(tf.backend))
    (tf.data_dir / "modules" / "modules.json").write_text("{}")
    (tf.data_dir / "providers").mkdir()
    with pytest.raises(TerraformError, match="Function already exist"):
        tfm.apply(tf, echo=None)
    assert "import" not in [c.split()[0] for c in calls(script)]


@pytest.mark.parametrize(
    ("error", "imported"),
    [
        (
            LOST_ALIAS_ERROR,
            "module.eval_runbook_worker.aws_lambda_alias.live[0] bluemoxon-local-eval-runbook-worker/live",
        ),
        (LOST_FUNCTION_ERROR, 'module.function["db_sync"].aws_lambda_function.this[0] bluemoxon-local-db-sync'),
    ],
    ids=["alias", "function"],
)
def test_apply_adopts_an_orphan_then_converges(tmp_path: Path, error: str, imported: str) -> None:
    marker = tmp_path / "imported"
    body = (
        f"marker = {str(marker)!r}\n"
        "if argv[0] == 'import':\n    open(marker, 'w').close()\n    sys.exit(0)\n"
        "if argv[0] == 'apply' and not os.path.exists(marker):\n"
        f"    sys.stderr.write({error!r}); sys.exit(1)\n"
    )
    script = fake_terraform(tmp_path / "bin", body)
    lines: list[str] = []
    tfm.apply(runner(tmp_path, script), echo=lines.append)
    ops = [c.split()[0] for c in calls(script)]
    assert ops == ["workspace", "apply", "import", "workspace", "apply"]
    assert calls(script)[2].endswith(imported)
    assert any(f"adopting {imported.split(maxsplit=1)[0]}" in line for line in lines)


def test_other_apply_errors_are_not_retried(tmp_path: Path) -> None:
    script = fake_terraform(
        tmp_path / "bin", "if argv[0] == 'apply':\n    sys.stderr.write('Error: AccessDenied'); sys.exit(1)\n"
    )
    with pytest.raises(TerraformError, match="AccessDenied"):
        tfm.apply(runner(tmp_path, script), echo=None)
    assert [c.split()[0] for c in calls(script)] == ["workspace", "apply"]

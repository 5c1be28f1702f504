from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.cli import check_settings_file
from deploy.config import load_env
from deploy.errors import ConfigError

SETTINGS: dict[str, Any] = {
    "runtime": "python3.12",
    "architecture": "x86_64",
    "environments": {
        "local": {"region": "us-east-1", "emulator": {"port": 5055}},
        "staging": {"region": "us-west-2", "profile": "stg", "architecture": "arm64"},
    },
}


def test_local_env_points_at_emulator() -> None:
    env = load_env(SETTINGS, "local")
    assert env.is_local
    assert env.endpoint_url == "http://127.0.0.1:5055"
    assert env.tfvars == "envs/local.tfvars"
    assert env.glibc_floor == (2, 34)
    assert env.python_version == "3.12"
    assert env.bytecode is True  # on unless turned off
    assert load_env({**SETTINGS, "bytecode": False}, "local").bytecode is False
    # invoke.yaml names the key, so INVOKE_DEPLOY_BYTECODE=false turns it off for one run.
    on = {**SETTINGS, "bytecode": True}
    assert load_env(on, "local", environ={"INVOKE_DEPLOY_BYTECODE": "false"}).bytecode is False


def test_env_overrides_top_level_defaults() -> None:
    env = load_env(SETTINGS, "staging")
    assert env.architecture == "arm64"
    assert env.endpoint_url is None
    assert env.profile == "stg"


def test_unknown_env_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_env(SETTINGS, "nosuch")
    assert err.value.exit_code == 2
    assert "local, staging" in str(err.value)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"runtime": "python2.7"}, "`deploy.environments.local.runtime`: 'python2.7' is not a supported runtime"),
        ({"architecture": "sparc"}, "`deploy.environments.local.architecture`: 'sparc' is not"),
        ({"builder": "make"}, "`deploy.environments.local.builder`: 'make' is not a builder"),
        ({"region": None}, "`deploy.environments.local.region`: missing key"),
        ({"emulator": {"port": "http"}}, "`deploy.environments.local.emulator.port`: expected an integer, got 'http'"),
        ({"emulator": {"port": 70000}}, "local.emulator.port`: input should be less than or equal to 65535"),
        ({"layer": {"strip_tests": "yes"}}, "`deploy.environments.local.layer.strip_tests`: expected true or false"),
        ({"smoke": {"api": [{"name": "x"}]}}, "`deploy.environments.local.smoke.api[0].event`: missing key"),
        ({"max_workers": 0}, "`deploy.environments.local.max_workers`: input should be greater than or equal to 1"),
        (
            {"verify": {"trusted_layers": ["someone:layer"]}},
            "local.verify.trusted_layers[0]`: 'someone:layer' is not a",
        ),
        ({"verify": {"trusted_layers": "arn"}}, "`deploy.environments.local.verify.trusted_layers`: expected a list"),
        ({"bytecode": "off"}, "`deploy.environments.local.bytecode`: expected true or false"),
        (
            {"runtime": "python3.11", "snap_start": True},
            "invoke.yaml: `deploy.environments.local.snap_start`: SnapStart needs python3.12 or later; this "
            "environment's runtime is python3.11 (`deploy.environments.local.runtime`)",
        ),
        ({"snap_start": "yes"}, "`deploy.environments.local.snap_start`: expected true or false"),
        (
            {"provisioned_concurrency": -1},
            "`deploy.environments.local.provisioned_concurrency`: input should be greater than or equal to 0",
        ),
        ({"provisioned_concurrency": "2"}, "`deploy.environments.local.provisioned_concurrency`: expected an integer"),
        ({"provisioned_concurrency": 1.5}, "`deploy.environments.local.provisioned_concurrency`: expected an integer"),
        ({"provisioned_concurrency": True}, "`deploy.environments.local.provisioned_concurrency`: expected an integer"),
    ],
)
def test_bad_settings_name_the_key(patch: dict[str, Any], message: str) -> None:
    local = {"region": "us-east-1", "emulator": {"port": 5055}, **patch}
    with pytest.raises(ConfigError) as err:
        load_env({"environments": {"local": local}}, "local")
    assert message in str(err.value)


def test_snap_start_and_provisioned_concurrency_load_and_inherit() -> None:
    top: dict[str, Any] = {
        "snap_start": True,
        "provisioned_concurrency": 2,
        "environments": {"staging": {"region": "us-west-2"}},
    }
    env = load_env(top, "staging")
    assert (env.snap_start, env.provisioned_concurrency) == (True, 2)
    off = load_env({"environments": {"staging": {"region": "us-west-2"}}}, "staging")
    assert (off.snap_start, off.provisioned_concurrency) == (False, 0)
    # The runtime a top-level snap_start meets is the environment's own: python3.11 there is refused.
    top["environments"]["staging"]["runtime"] = "python3.11"
    with pytest.raises(ConfigError, match=r"`deploy.snap_start`: SnapStart needs python3.12"):
        load_env(top, "staging")
    top["environments"]["staging"]["runtime"] = "python3.13"
    assert load_env(top, "staging").snap_start is True


def test_snap_start_is_refused_on_the_emulator_whose_lambda_drops_it() -> None:
    """moto reports SnapStart off whatever Terraform set: `terraform plan` would never settle."""
    local = {"region": "us-east-1", "emulator": {}, "snap_start": True}
    with pytest.raises(ConfigError, match=r"`deploy.environments.local.snap_start`: the emulator does not keep"):
        load_env({"environments": {"local": local}}, "local")


def test_provisioned_concurrency_is_refused_on_the_emulator_which_has_no_such_api() -> None:
    local = {"region": "us-east-1", "emulator": {}, "provisioned_concurrency": 1}
    with pytest.raises(ConfigError, match=r"`deploy.environments.local.provisioned_concurrency`: the emulator has no"):
        load_env({"environments": {"local": local}}, "local")
    assert load_env({"environments": {"local": {**local, "provisioned_concurrency": 0}}}, "local").is_local


def test_missing_deploy_tree() -> None:
    with pytest.raises(ConfigError, match="missing key deploy"):
        load_env({}, "local")
    with pytest.raises(ConfigError, match=r"missing key deploy\.environments"):
        load_env({"runtime": "python3.12"}, "local")


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "invoke.yaml"
    bad.write_text("deploy:\n  environments: [\n")
    with pytest.raises(ConfigError, match=r"invoke.yaml is not valid YAML at line \d+"):
        check_settings_file(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        check_settings_file(bad)


def test_state_settings_parsed_and_emulator_default() -> None:
    local = load_env(SETTINGS, "local")
    assert local.state is not None
    assert local.state.bucket == "terraform-state"
    remote = {"region": "us-west-2", "state": {"bucket": "tf-state", "key": "app/tf.tfstate", "lock": False}}
    env = load_env({"environments": {"staging": remote}}, "staging")
    assert env.state is not None
    assert (env.state.bucket, env.state.key, env.state.lock) == ("tf-state", "app/tf.tfstate", False)
    assert load_env({"environments": {"staging": {"region": "us-west-2"}}}, "staging").state is None


def test_bad_state_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"`deploy\.environments\.staging\.state\.bucket`: missing key"):
        load_env({"environments": {"staging": {"region": "us-west-2", "state": {"key": "x"}}}}, "staging")


def test_empty_profile_means_default_credentials() -> None:
    env = load_env({"environments": {"staging": {"region": "us-west-2", "profile": ""}}}, "staging")
    assert env.profile is None


def test_trusted_layers_parsed() -> None:
    arn = "arn:aws:lambda:us-west-2:580247275435:layer:LambdaInsightsExtension"
    staging = {"region": "us-west-2", "verify": {"trusted_layers": [arn]}}
    assert load_env({"environments": {"staging": staging}}, "staging").verify.trusted_layers == (arn,)
    assert load_env(SETTINGS, "staging").verify.trusted_layers == ()


def test_verify_isolation_defaults_to_bwrap_and_accepts_none_only() -> None:
    assert load_env(SETTINGS, "staging").verify.isolation == "bwrap"
    mac = {"region": "us-west-2", "verify": {"isolation": "none"}}
    assert load_env({"environments": {"staging": mac}}, "staging").verify.isolation == "none"
    with pytest.raises(ConfigError) as err:
        load_env({"environments": {"staging": {"region": "us-west-2", "verify": {"isolation": "docker"}}}}, "staging")
    assert "`deploy.environments.staging.verify.isolation`" in str(err.value)

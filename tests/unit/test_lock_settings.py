"""The deploy lock's lease settings (``deploy_lock``): defaults, per-environment overrides, and
values that would let a live holder's lock be taken over, refused naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.aws import lock as env_lock
from deploy.config import DeployLockSettings, load_env
from deploy.errors import ConfigError


def tree(**deploy_lock: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"region": "eu-west-1"}
    if deploy_lock:
        env["deploy_lock"] = deploy_lock
    return {"deploy_lock": {"lease_seconds": 240}, "environments": {"prod": env}}


def test_defaults_are_the_lock_modules_and_an_environment_overrides_the_top_level() -> None:
    assert (env_lock.DEFAULT_LEASE_S, env_lock.DEFAULT_HEARTBEAT_S) == (180.0, 30.0)
    assert load_env({"environments": {"prod": {"region": "r"}}}, "prod").deploy_lock == DeployLockSettings()
    assert load_env(tree(), "prod").deploy_lock == DeployLockSettings(lease_seconds=240, heartbeat_seconds=30)
    own = load_env(tree(lease_seconds=60, heartbeat_seconds=20), "prod").deploy_lock
    assert own == DeployLockSettings(lease_seconds=60, heartbeat_seconds=20)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"lease_seconds": 60, "heartbeat_seconds": 31},
            "`deploy.environments.prod.deploy_lock.heartbeat_seconds`: 31 s is more than half the lease (60 s",
        ),
        ({"lease_seconds": 5}, "deploy.environments.prod.deploy_lock.lease_seconds"),
        ({"lease_second": 60}, "did you mean `lease_seconds`"),
        ({"heartbeat_seconds": "10"}, "expected an integer"),
    ],
)
def test_a_lease_setting_that_cannot_work_is_refused_naming_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_env(tree(**values), "prod")
    assert message in str(err.value)

"""The rollout schedule (pure) and the rollout settings refused at load, naming the file and key."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.aws.rollout import Stage, schedule
from deploy.config import RolloutSettings, load_env
from deploy.errors import ConfigError


def weights(stages: tuple[Stage, ...]) -> list[tuple[int, float]]:
    return [(s.weight, s.hold) for s in stages]


@pytest.mark.parametrize(
    ("strategy", "percent", "interval", "expected"),
    [
        ("all-at-once", 10, 300, [(100, 0)]),
        ("canary", 10, 300, [(10, 300), (100, 0)]),
        ("canary", 99, 60, [(99, 60), (100, 0)]),
        ("linear", 25, 60, [(25, 60), (50, 60), (75, 60), (100, 0)]),
        ("linear", 30, 90, [(30, 90), (60, 90), (90, 90), (100, 0)]),  # a last step under 100 is kept
        ("linear", 50, 60, [(50, 60), (100, 0)]),
        ("linear", 99, 60, [(99, 60), (100, 0)]),
        ("linear", 1, 60, [(w, 60) for w in range(1, 100)] + [(100, 0)]),
    ],
)
def test_schedule(strategy: str, percent: int, interval: int, expected: list[tuple[int, float]]) -> None:
    assert weights(schedule(strategy, percent, interval)) == expected


@pytest.mark.parametrize("percent", [0, 100, -5])
def test_schedule_refuses_a_percent_outside_1_to_99(percent: int) -> None:
    with pytest.raises(ValueError, match="percent must be 1-99"):
        schedule("canary", percent, 60)


def test_schedule_refuses_an_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown rollout strategy 'blue-green'"):
        schedule("blue-green", 10, 60)


def settings(rollout: dict[str, Any]) -> dict[str, Any]:
    return {"region": "us-east-1", "environments": {"staging": {"rollout": rollout}}}


def test_rollout_defaults_to_all_at_once() -> None:
    env = load_env({"region": "us-east-1", "environments": {"staging": None}}, "staging")
    assert env.rollout == RolloutSettings(strategy="all-at-once", percent=10, interval=300, alarms=())
    assert not env.rollout.gradual


def test_rollout_settings_load_and_inherit_from_the_top_level() -> None:
    tree = {
        "region": "us-east-1",
        "rollout": {"strategy": "canary", "percent": 5, "interval": 600, "alarms": ["errors"]},
        "environments": {"staging": {"rollout": {"percent": 20}}, "prod": None},
    }
    assert load_env(tree, "staging").rollout == RolloutSettings(
        strategy="canary", percent=20, interval=600, alarms=("errors",)
    )
    assert load_env(tree, "prod").rollout.percent == 5


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        (
            {"strategy": "canry"},
            r"invoke\.yaml: `deploy\.environments\.staging\.rollout\.strategy`: 'canry' is not a rollout strategy; "
            r"did you mean 'canary'\? choose one of all-at-once, canary, linear",
        ),
        (
            {"strategy": "canary", "percent": 0},
            r"`deploy\.environments\.staging\.rollout\.percent`: input should be greater than or equal to 1, got 0",
        ),
        (
            {"strategy": "linear", "percent": 100},
            r"`deploy\.environments\.staging\.rollout\.percent`: input should be less than or equal to 99, got 100",
        ),
        (
            {"strategy": "canary", "interval": 59},
            r"invoke\.yaml: `deploy\.environments\.staging\.rollout\.interval`: 59 s is shorter than the deployed "
            r"verify's timeout \(60 s\)",
        ),
    ],
)
def test_bad_rollout_settings_are_refused_naming_the_key(rollout: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_env(settings(rollout), "staging")


def test_a_short_interval_is_named_where_it_is_set() -> None:
    tree = {
        "region": "us-east-1",
        "rollout": {"interval": 10},
        "environments": {"staging": {"rollout": {"strategy": "canary"}}},
    }
    with pytest.raises(ConfigError, match=r"`deploy\.rollout\.interval`: 10 s"):
        load_env(tree, "staging")

"""The sample app's verify settings as invoke.yaml declares them (its smoke events and sandbox
environment live there, not under deploy/): what the tests of the sample's behaviour use."""

from __future__ import annotations

from pathlib import Path

import yaml

from deploy.config import EnvConfig, load_env

ROOT = Path(__file__).resolve().parents[1]


def sample_env(name: str = "local") -> EnvConfig:
    return load_env(yaml.safe_load((ROOT / "invoke.yaml").read_text())["deploy"], name, environ={})


SAMPLE = sample_env()
SAMPLE_SMOKE = SAMPLE.verify.smoke
SAMPLE_SANDBOX_ENV = SAMPLE.verify.sandbox_env

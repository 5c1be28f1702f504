"""What each task does, step by step: the glue between settings, builds, AWS and reports.

Tasks call exactly one function here; each function logs its steps and delegates the
work to the module that owns the concept.
"""

from __future__ import annotations

from deploy import emulator
from deploy.config import EnvConfig
from deploy.errors import ConfigError
from deploy.report import progress, say


def _require_local(env: EnvConfig) -> None:
    if env.emulator is None:
        raise ConfigError(f"environment {env.name!r} has no emulator settings; local.* tasks are for `--env local`")


def emulator_up(env: EnvConfig) -> emulator.EmulatorState:
    _require_local(env)
    assert env.emulator is not None
    progress(f"starting moto server on {env.emulator.url}")
    state = emulator.up(env.emulator, env.paths.local_state)
    verb = "reusing" if state.reused else "started"
    say(f"{verb} moto server pid {state.pid} on {state.url} (log: {state.logfile})")
    return state


def emulator_down(env: EnvConfig) -> None:
    _require_local(env)
    assert env.emulator is not None
    say(emulator.down(env.emulator, env.paths.local_state))


def emulator_status(env: EnvConfig) -> None:
    _require_local(env)
    assert env.emulator is not None
    say(emulator.status(env.emulator, env.paths.local_state))

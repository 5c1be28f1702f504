"""Settings that catch mistakes: typos and wrong types exit 2 naming the key; every key can be
set by an INVOKE_* variable. Settings are loaded the way Invoke loads them for a task (project
file, the collection defaults tasks.py declares, then the shell environment)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.config import Config

from deploy.cli import plain, settings_defaults
from deploy.config import EmulatorSettings, EnvConfig, StateSettings, load_env
from deploy.errors import ConfigError
from deploy.settings import check_variables, invoke_defaults

ROOT = Path(__file__).resolve().parents[2]
REAL = yaml.safe_load((ROOT / "invoke.yaml").read_text())


def project(tmp_path: Path, deploy_tree: dict[str, Any]) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    (proj / "invoke.yaml").write_text(yaml.safe_dump({"deploy": deploy_tree}))
    return proj


def load(proj: Path, env: str, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> EnvConfig:
    """What a task sees: Invoke's own loading order, then deploy.cli's validation."""
    for var in [v for v in os.environ if v.startswith("INVOKE_")]:
        monkeypatch.delenv(var)
    for var, text in environ.items():
        monkeypatch.setenv(var, text)
    cfg = Config(project_location=str(proj))
    cfg.load_project()
    cfg.load_collection(settings_defaults(proj / "invoke.yaml", os.environ))
    cfg.load_shell_env()
    return load_env(plain(cfg["deploy"]), env, environ=os.environ)


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The real invoke.yaml's deploy tree with one key (dotted path) set."""
    tree = yaml.safe_load(yaml.safe_dump(REAL["deploy"]))
    *parents, last = path.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return dict(tree)


# --------------------------------------------------------------------------- typos and types


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "environments.local.verfy",
            {"remote": False},
            "`deploy.environments.local.verfy`: unknown key; did you mean `verify`?",
        ),
        ("layer.strip_test", True, "`deploy.layer.strip_test`: unknown key; did you mean `strip_tests`?"),
        (
            "environments.staging.layer.strip_test",
            True,
            "`deploy.environments.staging.layer.strip_test`: unknown key; did you mean `strip_tests`?",
        ),
        ("max_worker", 4, "`deploy.max_worker`: unknown key; did you mean `max_workers`?"),
        (
            "environments.production.share.organization_id",
            123,
            "`deploy.environments.production.share.organization_id`: expected a string, got 123",
        ),
        ("max_workers", "eight", "`deploy.max_workers`: expected an integer, got 'eight'"),
        (
            "environments.local.max_workers",
            "8",
            "`deploy.environments.local.max_workers`: expected an integer, got '8'",
        ),
        ("environments.local.emulator.prot", 5055, "`deploy.environments.local.emulator.prot`: unknown key; did you"),
        ("emulator", {"port": 1}, "`deploy.emulator`: unknown key; known keys here: region, profile"),
    ],
)
def test_mistakes_in_invoke_yaml_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, value: Any, message: str
) -> None:
    proj = project(tmp_path, with_change(path, value))
    env = path.split(".")[1] if path.startswith("environments.") else "local"
    with pytest.raises(ConfigError) as err:
        load(proj, env, {}, monkeypatch)
    assert err.value.exit_code == 2
    assert message in str(err.value)


def test_every_problem_is_reported_at_once() -> None:
    settings = with_change("max_worker", 4)
    settings["environments"]["local"]["verfy"] = {}
    with pytest.raises(ConfigError) as err:
        load_env(settings, "local")
    assert set(err.value.message.splitlines()) == {
        "`deploy.max_worker`: unknown key; did you mean `max_workers`?",
        "`deploy.environments.local.verfy`: unknown key; did you mean `verify`?",
    }


def test_the_real_invoke_yaml_is_valid() -> None:
    for env in REAL["deploy"]["environments"]:
        assert load_env(REAL["deploy"], env, environ={}).name == env


def test_a_typo_exits_2_through_inv(tmp_path: Path) -> None:
    """The whole path: Invoke loads the file, the task exits 2 naming the key, no traceback."""
    proj = project(tmp_path, with_change("environments.local.verfy", {"remote": False}))
    shutil.copy(ROOT / "tasks.py", proj / "tasks.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "status", "--env", "local"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "`deploy.environments.local.verfy`: unknown key; did you mean `verify`?" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- INVOKE_* variables


def test_a_key_that_only_exists_at_the_top_level_can_be_set_per_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(tmp_path, REAL["deploy"])
    assert load(proj, "local", {}, monkeypatch).runtime == "python3.12"
    env = load(proj, "local", {"INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIME": "python3.11"}, monkeypatch)
    assert env.runtime == "python3.11"
    assert load(proj, "staging", {"INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIME": "python3.11"}, monkeypatch).runtime == (
        "python3.12"
    )


def test_nested_per_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, REAL["deploy"])
    env = load(
        proj,
        "staging",
        {
            "INVOKE_DEPLOY_ENVIRONMENTS_STAGING_LAYER_STRIP_TESTS": "true",
            # Invoke's own cast makes any non-empty text True; the value is read as YAML instead.
            "INVOKE_DEPLOY_ENVIRONMENTS_STAGING_VERIFY_REMOTE": "false",
            "INVOKE_DEPLOY_ENVIRONMENTS_STAGING_SHARE_ORGANIZATION_ID": "o-abc123",
            "INVOKE_DEPLOY_ENVIRONMENTS_STAGING_STATE_LOCK": "false",
            "INVOKE_DEPLOY_ENVIRONMENTS_STAGING_MAX_WORKERS": "3",
        },
        monkeypatch,
    )
    assert env.layer.strip_tests is True
    assert env.layer.exclude_runtime_boto is False  # the sibling keeps its inherited value
    assert env.verify.remote is False
    assert env.share.organization_id == "o-abc123"
    assert env.state is not None and env.state.lock is False
    assert env.max_workers == 3


def test_a_top_level_value_is_inherited_and_an_environment_value_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(tmp_path, REAL["deploy"])
    both = {"INVOKE_DEPLOY_MAX_WORKERS": "2", "INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_MAX_WORKERS": "5"}
    assert load(proj, "staging", both, monkeypatch).max_workers == 2
    assert load(proj, "local", both, monkeypatch).max_workers == 5


def test_a_wrong_type_from_a_variable_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = project(tmp_path, REAL["deploy"])
    with pytest.raises(ConfigError, match=r"`deploy\.environments\.local\.verify\.remote`: expected true or false"):
        load(proj, "local", {"INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_VERIFY_REMOTE": "maybe"}, monkeypatch)


def _readme_overrides() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"`(INVOKE_DEPLOY_[A-Z0-9_]+)=([^`\s]*)", text)
    return sorted(set(found))


def test_readme_shows_override_examples() -> None:
    assert len(_readme_overrides()) >= 4


@pytest.mark.parametrize(("var", "text"), _readme_overrides())
def test_each_override_the_readme_shows_takes_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, text: str
) -> None:
    proj = project(tmp_path, REAL["deploy"])
    match = re.match(r"INVOKE_DEPLOY_ENVIRONMENTS_([A-Z]+)_", var)
    env = match.group(1).lower() if match else "local"
    text = text.strip("\"'")
    before = load(proj, env, {}, monkeypatch)
    after = load(proj, env, {var: text}, monkeypatch)
    assert after != before, f"{var}={text} changed nothing"


# --------------------------------------------------------------------------- checked before Invoke reads them


def test_an_unknown_variable_is_refused_with_the_likely_one() -> None:
    with pytest.raises(ConfigError) as err:
        check_variables(REAL["deploy"], {"INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIM": "python3.11"})
    assert "INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIM: no such setting; did you mean " in str(err.value)
    assert "INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_RUNTIME?" in str(err.value)


def test_text_invoke_cannot_cast_is_refused_before_invoke_crashes() -> None:
    with pytest.raises(ConfigError, match=r"`deploy\.environments\.local\.emulator\.port`: expected an integer"):
        check_variables(REAL["deploy"], {"INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_EMULATOR_PORT": "abc"})
    check_variables(REAL["deploy"], {"INVOKE_DEPLOY_ENVIRONMENTS_LOCAL_EMULATOR_PORT": "5055", "HOME": "/x"})


def test_defaults_declare_every_key_for_every_environment() -> None:
    declared = invoke_defaults(REAL["deploy"])["deploy"]
    assert set(declared["environments"]) == {"local", "staging", "production"}
    staging = declared["environments"]["staging"]
    assert staging["runtime"] is None and staging["layer"] == {"exclude_runtime_boto": None, "strip_tests": None}
    assert "emulator" not in staging  # declaring it would turn staging into an emulator environment
    assert declared["environments"]["local"]["emulator"] == {"host": None, "port": None}


# ---------------------------------------------------------------------------
# Without pydantic on the way of every task: the key table and remembered checks


def test_the_key_list_and_the_model_are_the_declarations() -> None:
    """Invoke's key list and pydantic's fields, section by section, are the declaration's keys."""
    from deploy import settings_model
    from deploy import settings_schema as schema

    declared = invoke_defaults({"environments": {"local": {"emulator": {}, "state": {}}}})["deploy"]
    assert declared == {
        **schema.declared(schema.Deploy),
        "environments": {"local": schema.declared(schema.Environment)},
    }
    for section in (schema.Deploy, schema.Environment, schema.Verify, schema.SmokeCase, schema.State):
        assert list(settings_model.model(section).model_fields) == list(schema.keys(section))


def _attribute(env: EnvConfig, path: tuple[str, ...]) -> Any:
    """Where load_env puts a key: its own path, but for the few keys EnvConfig keeps elsewhere."""
    where = {("smoke",): ("verify", "smoke")}.get(path, path)
    found: Any = env
    for name in where:
        found = getattr(found, name)
    return found


def test_every_declared_key_reaches_the_config_with_its_default_and_is_type_checked() -> None:
    """A key declared but not loaded (no field, another default, in invoke.yaml's path or in EnvConfig's own
    defaults) fails here, as does one whose type is not checked."""
    from deploy import settings_schema as schema

    #: Keys whose fallback is not a constant: it depends on the environment (or the key is required).
    computed = {("region",), ("tfvars",), ("endpoint_url",), ("state", "bucket")}
    bare = load_env({"environments": {"t": {"region": "r"}}}, "t")
    local = load_env({"environments": {"t": {"region": "r", "emulator": {}, "state": {"bucket": "b"}}}}, "t")
    assert (
        bare.tfvars == "envs/t.tfvars" and bare.endpoint_url is None and local.endpoint_url == "http://127.0.0.1:5000"
    )
    # Settings made in code (tests, tools) without invoke.yaml get the same defaults.
    made = EnvConfig(name="t", region="r", emulator=EmulatorSettings(), state=StateSettings(bucket="b"))
    checked = 0
    for path, key in schema.leaves(schema.Environment):
        assert key.default is not schema.REQUIRED, path  # every key may be left out
        if path not in computed:
            env = local if path[0] in ("emulator", "state") else bare
            assert _attribute(env, path) == key.default, path
            assert _attribute(made, path) == key.default, path
            checked += 1
        tree: dict[str, Any] = {"region": "r"}
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = [[1]]  # no declared type takes a list of lists
        with pytest.raises(ConfigError) as err:
            load_env({"environments": {"t": tree}}, "t")
        assert f"`deploy.environments.t.{'.'.join(path)}" in str(err.value), path
    assert checked == len(schema.leaves(schema.Environment)) - len(computed)


def test_a_key_added_to_or_removed_from_the_declaration_is_known_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key list Invoke needs, INVOKE_* variables, the model and its did-you-mean all follow the declaration."""
    from deploy import settings
    from deploy import settings_schema as schema

    monkeypatch.setattr(schema.Layer, "compress", schema.Key(bool, default=False), raising=False)
    declared = invoke_defaults(REAL["deploy"])["deploy"]
    assert declared["layer"]["compress"] is None and declared["environments"]["staging"]["layer"]["compress"] is None
    check_variables(REAL["deploy"], {"INVOKE_DEPLOY_ENVIRONMENTS_STAGING_LAYER_COMPRESS": "true"})
    tree = {**REAL["deploy"], "layer": {"compress": True}}
    assert settings.validate(tree)["layer"] == {"compress": True}
    with pytest.raises(ConfigError, match=r"`deploy\.layer\.compress`: expected true or false, got 'yes'"):
        settings.validate({**REAL["deploy"], "layer": {"compress": "yes"}})
    with pytest.raises(ConfigError, match=r"`deploy\.layer\.compres`: unknown key; did you mean `compress`\?"):
        settings.validate({**REAL["deploy"], "layer": {"compres": True}})

    monkeypatch.delattr(schema.Layer, "strip_tests")
    with pytest.raises(ConfigError, match=r"`deploy\.layer\.strip_tests`: unknown key"):
        settings.validate({**REAL["deploy"], "layer": {"strip_tests": True}})
    with pytest.raises(ConfigError, match="INVOKE_DEPLOY_LAYER_STRIP_TESTS: no such setting"):
        check_variables({}, {"INVOKE_DEPLOY_LAYER_STRIP_TESTS": "true"})


def test_a_tree_that_passed_is_not_checked_again_and_one_that_failed_always_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploy import settings, settings_model

    folder = tmp_path / "settings"
    first = settings.validate(REAL["deploy"], remember=folder)
    assert len(list(folder.glob("*.json"))) == 1

    def must_not_run(tree: Any) -> Any:
        raise AssertionError("checked again")

    monkeypatch.setattr(settings_model, "validated", must_not_run)
    assert settings.validate(REAL["deploy"], remember=folder) == first
    monkeypatch.undo()

    bad = {**REAL["deploy"], "max_workers": "eight"}
    for _ in range(2):
        with pytest.raises(ConfigError, match="max_workers"):
            settings.validate(bad, remember=folder)
    assert len(list(folder.glob("*.json"))) == 1

    # Another model (its source is part of the key) checks the same tree again.
    other_model = tmp_path / "settings_model.py"
    other_model.write_text(settings._MODEL_SOURCE.read_text() + "\n# changed\n")
    monkeypatch.setattr(settings, "_MODEL_SOURCE", other_model)
    assert settings.validate(REAL["deploy"], remember=folder) == first
    assert len(list(folder.glob("*.json"))) == 2

    monkeypatch.setattr(settings, "REMEMBERED", 2)  # bounded: the oldest goes
    settings.validate({**REAL["deploy"], "max_workers": 3}, remember=folder)
    assert len(list(folder.glob("*.json"))) == 2


def test_a_remembered_tree_loads_the_same_config_without_importing_pydantic(tmp_path: Path) -> None:
    """What a no-op `inv build-layer` pays: the second run reads the remembered check."""
    script = f"""
import json, os, sys, yaml
from pathlib import Path
from deploy.cli import settings_defaults
from deploy.config import load_env
tree = yaml.safe_load(open({str(ROOT / "invoke.yaml")!r}))["deploy"]
settings_defaults(Path({str(ROOT / "invoke.yaml")!r}), {{}})
env = load_env(tree, "local", environ={{}}, remember=Path({str(tmp_path / "settings")!r}))
print(json.dumps({{"pydantic": "pydantic" in sys.modules, "env": repr(env)}}))
"""
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ}
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert runs[0]["pydantic"] and not runs[1]["pydantic"]
    assert runs[0]["env"] == runs[1]["env"]


def test_what_json_would_change_is_checked_every_time_and_never_remembered(tmp_path: Path) -> None:
    """A YAML date in a smoke event is refused (a Lambda event is JSON) on every run, never remembered; an
    integer key, which JSON would make a string, is refused on every run, never served from a remembered "1"."""
    from deploy import settings

    folder = tmp_path / "settings"
    dated = yaml.safe_load(
        "environments:\n  local:\n    region: us-east-1\n    smoke:\n      api:\n"
        "        - name: since\n          event: {since: 2024-01-01}\n"
    )
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"`deploy.environments.local.smoke.api\[0\].event`: not JSON"):
            load_env(dated, "local", environ={}, remember=folder)
    assert not folder.exists()

    quoted = {**REAL["deploy"], "extra_regions": {"1": "us-west-2"}}
    settings.validate(quoted, remember=folder)  # a string key: fine, and remembered
    assert len(list(folder.glob("*.json"))) == 1
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"extra_regions"):
            settings.validate({**REAL["deploy"], "extra_regions": {1: "us-west-2"}}, remember=folder)
    assert len(list(folder.glob("*.json"))) == 1


# --------------------------------------------------------------------------- smoke events


def test_smoke_events_at_the_top_level_load_through_invoke_for_every_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way (top-level ``smoke:`` in invoke.yaml) used to crash Invoke merging its null
    default with the mapping (AmbiguousMergeError); every environment now gets those events."""
    proj = project(tmp_path, REAL["deploy"])
    for name in ("local", "staging"):
        env = load(proj, name, {}, monkeypatch)
        assert [c.name for c in env.verify.smoke["api"]] == ["health", "admin-cleanup-dry-run"]
        assert env.verify.sandbox_env["*"]["DATABASE_URL"] == "sqlite:///{tmp}/sandbox.db"


def test_smoke_events_of_an_environment_replace_the_top_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = with_change("environments.staging.smoke", {"notifier": [{"name": "ping", "event": {"ping": 1}}]})
    tree = {**tree, "smoke": {}, "verify": {}}
    tree["environments"]["staging"]["verify"] = {"remote": True, "sandbox_env": {"notifier": {"X": "1"}}}
    proj = project(tmp_path, tree)
    staging = load(proj, "staging", {}, monkeypatch)
    assert list(staging.verify.smoke) == ["notifier"]
    assert staging.verify.smoke["notifier"][0].event == {"ping": 1}
    assert staging.verify.sandbox_env == {"notifier": {"X": "1"}}
    local = load(proj, "local", {}, monkeypatch)
    assert local.verify.smoke == {} and local.verify.sandbox_env == {}


@pytest.mark.parametrize("where", ["smoke", "environments.local.smoke"])
def test_a_smoke_event_that_is_not_json_is_refused_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    tree = with_change(where, {"api": [{"name": "x", "event": {"n": 1}}]})
    text = yaml.safe_dump({"deploy": tree}).replace("n: 1", "n: .nan")
    (proj / "invoke.yaml").write_text(text)
    path = "deploy.smoke" if where == "smoke" else "deploy.environments.local.smoke"
    with pytest.raises(ConfigError, match=re.escape(f"`{path}.api[0].event`: not JSON")):
        load(proj, "local", {}, monkeypatch)


def test_smoke_events_in_a_variable_are_refused_not_ignored() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("INVOKE_DEPLOY_SMOKE_API: `deploy.smoke.api` is a list; set it in invoke.yaml")
    ):
        check_variables(REAL["deploy"], {"INVOKE_DEPLOY_SMOKE_API": "[]"})
    with pytest.raises(ConfigError, match="INVOKE_DEPLOY_SMOKE: no such setting"):
        check_variables(REAL["deploy"], {"INVOKE_DEPLOY_SMOKE": "{api: []}"})

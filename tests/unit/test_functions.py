"""The function map (Terraform's var.functions) as the build reads it, and the build's refusals of a
map that would deploy a function Lambda cannot import. Terraform itself evaluates the map
(``terraform console`` on variables.tf alone): these run the real binary, offline."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from deploy.build import build_function, function_plan
from deploy.config import EnvConfig, Paths
from deploy.errors import BuildError, ConfigError
from deploy.terraform.functions import DeclaredFunction, declared_functions, duplicate_keys
from tests.targets import make_targets
from tests.unit.test_build import _backend, _function_map

ROOT = Path(__file__).resolve().parents[2]


def _env(paths: Paths, tfvars: str = "envs/test.tfvars") -> EnvConfig:
    return EnvConfig(name="test", region="us-east-1", paths=paths, tfvars=tfvars, bytecode=False)


def test_the_sample_map_is_read_from_terraform_with_the_envs_var_file() -> None:
    functions = declared_functions(_env(Paths(root=ROOT), "envs/local.tfvars"))
    assert [f.key for f in functions] == ["api", "cleanup", "db_sync", "eval_runbook_worker"]
    api = functions[0]
    assert api.handler == "app.main.handler" and api.sources == ("app",) and api.module == "app.main"


def test_a_var_file_replaces_the_map(tmp_path: Path) -> None:
    paths = _backend(tmp_path, git=False)
    (paths.terraform / "envs").mkdir()
    (paths.terraform / "envs" / "test.tfvars").write_text(
        'functions = {\n  notifier = { handler = "app.main.handler", sources = ["app"] }\n}\n'
    )
    assert declared_functions(_env(paths)) == (
        DeclaredFunction(key="notifier", handler="app.main.handler", sources=("app",)),
    )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('{ handler = "notify.main.handler", memory = 512 }', 'attribute "sources" is required'),
        ('{ handler = "notify.main.handler", sources = ["reports"] }', "a handler lies outside its function's sources"),
    ],
)
def test_terraforms_own_type_and_validation_checks_name_the_problem(tmp_path: Path, entry: str, problem: str) -> None:
    paths = _backend(tmp_path, git=False)
    (paths.terraform / "variables.tf").write_text((ROOT / "infra" / "terraform" / "variables.tf").read_text())
    (paths.terraform / "envs").mkdir()
    (paths.terraform / "envs" / "test.tfvars").write_text(f"functions = {{\n  notifier = {entry}\n}}\n")
    with pytest.raises(ConfigError) as info:
        declared_functions(_env(paths))
    assert problem in info.value.message
    assert info.value.exit_code == 2


def test_two_functions_with_one_name_are_refused(tmp_path: Path) -> None:
    """HCL keeps the last of two entries with one key, silently: the map's text is checked for it."""
    paths = _backend(tmp_path, git=False)
    (paths.terraform / "envs").mkdir()
    (paths.terraform / "envs" / "test.tfvars").write_text(
        "functions = {\n"
        '  api = { handler = "app.main.handler", sources = ["app"] } # api = { a comment }\n'
        '  "api" = { handler = "lambdas.cleanup.handler.handler", sources = ["lambdas"] }\n'
        "}\n"
    )
    with pytest.raises(ConfigError, match=r"function 'api' is declared twice in functions"):
        declared_functions(_env(paths))


def test_duplicate_keys_sees_only_the_maps_own_keys() -> None:
    text = (ROOT / "infra" / "terraform" / "variables.tf").read_text()
    assert duplicate_keys(text, in_variable=True) == []
    nested = (
        'functions = {\n  a = { environment = { X = "1" } }\n'
        '  b = { environment = { X = "2" }, invokes = { X = "a" } }\n}\n'
    )
    assert duplicate_keys(nested, in_variable=False) == []
    heredoc = "functions = {\n  a = { description = <<-EOT\n  a = 1\n  EOT\n  }\n  b = {}\n}\n"
    assert duplicate_keys(heredoc, in_variable=False) == []


def test_a_handler_module_that_does_not_exist_is_refused_at_build_naming_it(tmp_path: Path) -> None:
    paths = _backend(tmp_path, git=False)
    _function_map(tmp_path, {"notifier": ("lambdas.notifier.handler.handler", ["lambdas"])})
    with pytest.raises(BuildError) as info:
        function_plan(_env(paths))
    assert info.value.message == (
        "function notifier: handler lambdas.notifier.handler.handler: module lambdas.notifier.handler not found "
        "(no backend/lambdas/notifier/handler.py or backend/lambdas/notifier/handler/__init__.py)"
    )
    assert not (paths.build / "functions").exists()  # nothing built


def test_a_handler_outside_its_functions_sources_is_refused(tmp_path: Path) -> None:
    paths = _backend(tmp_path, git=False)
    _function_map(tmp_path, {"api": ("app.main.handler", ["lambdas"])})
    with pytest.raises(BuildError, match=r"function api: handler app.main.handler is in backend/app/main.py, outside"):
        function_plan(_env(paths))


@pytest.mark.parametrize("source", ["../secrets", "/etc"])
def test_a_source_outside_backend_is_refused(tmp_path: Path, source: str) -> None:
    paths = _backend(tmp_path, git=False)
    _function_map(tmp_path, {"api": ("app.main.handler", ["app", source])})
    with pytest.raises(BuildError, match=rf"function api: source '{source}' is outside backend/"):
        function_plan(_env(paths))


def test_the_zip_holds_the_union_of_the_sources_files_included(tmp_path: Path) -> None:
    paths = _backend(tmp_path, git=False)
    (paths.backend / "notes.py").write_text("X = 1\n")
    (paths.backend / "other").mkdir()
    (paths.backend / "other" / "left_out.py").write_text("")
    _function_map(
        tmp_path,
        {
            "api": ("app.main.handler", ["app", "app/routes"]),
            "cleanup": ("lambdas.cleanup.handler.handler", ["lambdas/__init__.py", "lambdas/cleanup", "notes.py"]),
        },
    )
    plan = function_plan(_env(paths))
    assert plan.sources == ("app", "lambdas/__init__.py", "lambdas/cleanup", "notes.py")
    names = zipfile.ZipFile(build_function(plan).artifact.path).namelist()
    assert {"app/main.py", "app/routes/__init__.py", "lambdas/__init__.py", "lambdas/cleanup/handler.py"} <= set(names)
    assert "notes.py" in names and not any(n.startswith("other/") for n in names)
    assert "app/tests/test_main.py" not in names  # a source's tests are still left out


def test_the_local_verify_runs_the_map_not_the_state() -> None:
    """Before an apply the state still lists a removed function (whose handler left the zip) and lacks a
    new one: the local verify runs what the map declares, under the names Terraform gave them."""
    from deploy.config import FunctionTarget
    from deploy.terraform.functions import as_declared

    state = make_targets(
        "local",
        (
            FunctionTarget(key="kept", name="acme-local-kept", handler="old.handler", runtime="python3.13"),
            FunctionTarget(key="removed", name="acme-local-removed", handler="gone.handler"),
        ),
        layer_name="l",
    )
    declared = (
        DeclaredFunction(key="added", handler="new.handler", sources=("new",)),
        DeclaredFunction(key="kept", handler="kept.handler", sources=("kept",)),
    )
    functions = as_declared(state, declared).functions
    assert [(f.key, f.name, f.handler, f.sources, f.runtime) for f in functions] == [
        ("added", "added (new)", "new.handler", ("new",), None),
        ("kept", "acme-local-kept", "kept.handler", ("kept",), "python3.13"),
    ]

"""Bytecode for both artifacts: the runtime's own compiler, deterministic, errors that name the culprit."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest

from deploy import bytecode
from deploy.build import build_function, build_layer, function_plan, layer_plan
from deploy.errors import BuildError
from deploy.install import DockerInstaller
from tests.unit.runtime_pyc import _host, bytecode_magic
from tests.unit.test_build import FakeInstaller, _backend, _checkout, _env
from tests.unit.test_install import FakeEngine

# Valid from Python 3.13 on (PEP 696 type-parameter defaults): "syntax for a newer Python".
NEWER_SYNTAX = b"type Pair[T = int] = tuple[T, T]\n"


class FixedVersion(bytecode.LocalCompiler):
    """The host's python3.12, reporting another patch release: what a second machine would be."""

    def __init__(self, version: str) -> None:
        super().__init__("3.12")
        self._version = version

    def version(self) -> str:
        return self._version


def test_missing_runtime_interpreter_says_how_to_get_one_or_turn_bytecode_off(tmp_path: Path) -> None:
    compiler = bytecode.LocalCompiler("3.12", env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    with pytest.raises(BuildError) as err:
        layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller(), compiler=compiler)
    message = str(err.value)
    assert "Python 3.12 interpreter" in message
    assert "pyenv install 3.12" in message and "--builder docker" in message and "bytecode: false" in message
    assert err.value.exit_code == 4


def test_bytecode_off_changes_the_identity_and_ships_no_pyc(tmp_path: Path) -> None:
    on = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller())
    off = layer_plan(_env(_checkout(tmp_path), bytecode=False), installer=FakeInstaller())
    assert off.identity.bytecode is None and on.identity.bytecode == f"cpython-{_host().version}"
    assert off.digest != on.digest
    names = zipfile.ZipFile(build_layer(off).artifact.path).namelist()
    assert "python/six/__init__.py" in names
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    with zipfile.ZipFile(off.zip_path) as zf:
        record = zf.read("python/six-1.17.0.dist-info/RECORD").decode()
    assert "__pycache__" not in record and "bin/" not in record


def test_function_code_without_bytecode(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    names = zipfile.ZipFile(build_function(function_plan(_env(paths, bytecode=False))).artifact.path).namelist()
    assert "app/main.py" in names and not any(n.endswith(".pyc") for n in names)


def test_the_interpreter_patch_version_is_part_of_the_identity(tmp_path: Path) -> None:
    paths = _checkout(tmp_path)
    one = layer_plan(_env(paths), installer=FakeInstaller(), compiler=FixedVersion("3.12.1"))
    two = layer_plan(_env(paths), installer=FakeInstaller(), compiler=FixedVersion("3.12.2"))
    assert (one.identity.bytecode, two.identity.bytecode) == ("cpython-3.12.1", "cpython-3.12.2")
    assert one.digest != two.digest


def test_stale_bytecode_shipped_in_a_wheel_is_dropped(tmp_path: Path) -> None:
    stale = {
        "{name}/__pycache__/__init__.cpython-38.pyc": b"\x55\x0d\x0d\x0a py38",
        "{name}/legacy.pyc": b"\x03\xf3\x0d\x0a py27",
        "{name}/helper.py": b"X = 1\n",
    }
    plan = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller(files=stale))
    with zipfile.ZipFile(build_layer(plan).artifact.path) as zf:
        names = zf.namelist()
        ours = zf.read("python/six/__pycache__/__init__.cpython-312.pyc")
    assert not any("cpython-38" in n or n.endswith("legacy.pyc") for n in names)
    assert "python/six/__pycache__/helper.cpython-312.pyc" in names
    assert ours[:4] == bytecode_magic() and b"junk" not in ours  # the wheel's own cpython-312 junk is replaced


def test_a_package_that_does_not_compile_for_the_runtime_is_named(tmp_path: Path) -> None:
    site_file = {"futurepkg/typing_new.py": NEWER_SYNTAX}

    class WithNewSyntax(FakeInstaller):
        def install(self, requirements: Path, target: Path, **kwargs: Any) -> None:  # type: ignore[override]
            super().install(requirements, target, **kwargs)
            for rel, data in site_file.items():
                (target / rel).write_bytes(data)
            with (target / "futurepkg-2.0.dist-info" / "RECORD").open("a") as record:
                record.write("futurepkg/typing_new.py,,\n")

    plan = layer_plan(_env(_checkout(tmp_path)), installer=WithNewSyntax(extra={"futurepkg": "2.0"}))
    with pytest.raises(BuildError) as err:
        build_layer(plan)
    message = str(err.value)
    assert "do not compile under python3.12" in message
    assert "futurepkg 2.0: python/futurepkg/typing_new.py: SyntaxError" in message
    assert "(line 1)" in message
    assert not plan.zip_path.exists() and not list((tmp_path / ".build" / "tmp").iterdir())


def test_function_code_that_does_not_compile_is_named(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "lambdas" / "cleanup" / "handler.py").write_bytes(NEWER_SYNTAX)
    with pytest.raises(BuildError, match=r"backend/lambdas/cleanup/handler\.py: SyntaxError"):
        build_function(function_plan(_env(paths)))


def test_compiled_bytes_do_not_depend_on_order_workers_or_path(tmp_path: Path) -> None:
    python = _host()
    trees = []
    for name, reverse in (("a", False), ("elsewhere/b", True)):
        root = tmp_path / name / "python"
        (root / "pkg").mkdir(parents=True)
        # `in {...}` compiles to a frozenset constant, marshalled in hash order: the seed must be fixed.
        members = ", ".join(repr(f"member-{i}") for i in range(12))
        (root / "pkg" / "__init__.py").write_text(f"def known(x):\n    return x in {{{members}}}\n")
        (root / "pkg" / "m.py").write_text("def f():\n    return {'a': 1}\n")
        files = bytecode.python_files(root)
        spec = bytecode._spec(str(root), str(root), "/opt/python/", files[::-1] if reverse else files)
        spec["workers"] = 2 if reverse else 1
        spec_file = tmp_path / f"{name.replace('/', '_')}.json"
        spec_file.write_text(json.dumps(spec))
        subprocess.run(
            [str(python.path), "-S", "-s", "-B", str(bytecode.RUNNER), str(spec_file)],
            env=bytecode.runner_env(),
            check=True,
            capture_output=True,
        )
        trees.append({p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))})
    assert trees[0] == trees[1] and len(trees[0]) == 2


# ---------------------------------------------------------------------------
# Docker builder: compiled inside the Lambda image (the fake engine runs the image's python3
# as this host's python3.12, with the container's mounts mapped back to host paths).


def _python_in_image(kwargs: dict[str, Any]) -> tuple[int, bytes, bytes]:
    binds = {v["bind"]: host for host, v in kwargs["volumes"].items()}
    command = kwargs["command"]
    if "-c" in command:
        return 0, b"3.12.9\n", b""  # the image's own patch release, not the host's
    spec_path = Path(binds["/spec"]) / "spec.json"
    spec = json.loads(spec_path.read_text())
    assert kwargs["environment"]["PYTHONHASHSEED"] == "0"
    host_spec = spec_path.with_name("host.json")
    host_spec.write_text(json.dumps({**spec, "root": binds[spec["root"]], "out": binds[spec["out"]]}))
    proc = subprocess.run(
        [str(_host().path), *command[:-2], binds["/runner/bytecode_runner.py"], str(host_spec)],
        env=kwargs["environment"],
        capture_output=True,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_docker_builder_compiles_inside_the_image(tmp_path: Path) -> None:
    engine = FakeEngine(present=True, python=_python_in_image)
    installer = DockerInstaller(client_factory=lambda: engine, python_version="3.12", architecture="x86_64")
    plan = layer_plan(_env(_checkout(tmp_path), builder="docker"), installer=installer)
    assert isinstance(plan.compiler, bytecode.DockerCompiler)
    assert plan.identity.bytecode == "cpython-3.12.9"
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("X = 1\n")
    (site / "pkg" / "new.py").write_bytes(NEWER_SYNTAX)
    assert plan.compiler is not None
    failures = plan.compiler.compile(site, bytecode.python_files(site), out=site, prefix="/opt/python/")
    assert [f.file for f in failures] == ["pkg/new.py"] and "SyntaxError" in failures[0].error
    assert (site / "pkg" / "__pycache__" / "__init__.cpython-312.pyc").is_file()
    run = engine.containers.runs[-1]
    assert run["entrypoint"] == ["python3"] and run["volumes"][str(site.resolve())] == {"bind": "/out", "mode": "rw"}
    assert engine.containers.last is not None and engine.containers.last.removed


# ---------------------------------------------------------------------------
# The builder registry: an installer declares its compiler; the plan asks no builder name


class DeclaresItsCompiler(FakeInstaller):
    """A builder the project does not ship, registered by the test alone."""

    name = "declared"
    made_for: ClassVar[list[tuple[str, str]]] = []

    @classmethod
    def for_target(cls, *, python_version: str, architecture: str) -> DeclaresItsCompiler:
        cls.made_for.append((python_version, architecture))
        return cls()

    def compiler(self, python_version: str, *, cache: Any) -> bytecode.Compiler:
        return FixedVersion(f"{python_version}.77")


def test_the_plan_compiles_with_the_compiler_the_registered_installer_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploy.install import INSTALLERS

    monkeypatch.setitem(INSTALLERS, "declared", DeclaresItsCompiler)
    monkeypatch.setattr(DeclaresItsCompiler, "made_for", [])
    plan = layer_plan(_env(_checkout(tmp_path), builder="declared"), architecture="arm64")
    assert isinstance(plan.installer, DeclaresItsCompiler)
    assert DeclaresItsCompiler.made_for == [("3.12", "arm64")]
    assert isinstance(plan.compiler, FixedVersion) and plan.identity.bytecode == "cpython-3.12.77"
    assert plan.identity.builder == "declared"
    # The docker builder declares the image's own Python; uv and pip this machine's runtime Python.
    from deploy.install import installer_for

    docker = installer_for("docker", python_version="3.12", architecture="x86_64")
    assert isinstance(docker.compiler("3.12", cache=None), bytecode.DockerCompiler)
    for name in ("uv", "pip"):
        here = installer_for(name, python_version="3.12", architecture="x86_64")
        assert type(here.compiler("3.12", cache=None)) is bytecode.LocalCompiler

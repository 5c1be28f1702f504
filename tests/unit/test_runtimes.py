"""The runtime table (deploy.lambda_facts.RUNTIMES) and the boundaries its entries create: runtimes that
share a glibc floor still build different layers, one glibc minor above the floor is already too new,
bytecode needs the runtime's own interpreter, and a deprecated runtime is named with its date."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest

from deploy import audit, bytecode, preflight, runtime_python
from deploy.artifact import PackageInfo
from deploy.config import LayerOptions, load_env
from deploy.errors import AuditError, BuildError, ConfigError
from deploy.identity import layer_identity
from deploy.install import describe_target, manylinux_platforms, uv_platform
from deploy.lambda_facts import LAMBDA_OS, RUNTIME_GLIBC, RUNTIMES, deprecation_warning
from deploy.lock import Requirement
from tests.unit import wheelfactory as wf

AL2023 = ("python3.12", "python3.13", "python3.14")


def test_table_bases_and_floors() -> None:
    for name in AL2023:
        assert (RUNTIMES[name].os, RUNTIMES[name].glibc) == ("Amazon Linux 2023", (2, 34))
    for name in ("python3.9", "python3.10", "python3.11"):
        assert (RUNTIMES[name].os, RUNTIMES[name].glibc) == ("Amazon Linux 2", (2, 26))
    assert RUNTIME_GLIBC["python3.14"] == (2, 34)
    assert LAMBDA_OS == {(2, 26): "Amazon Linux 2", (2, 34): "Amazon Linux 2023"}
    assert RUNTIMES["python3.9"].deprecated == datetime.date(2025, 12, 15)


def test_python314_is_a_target_the_settings_and_installer_accept() -> None:
    env = load_env({"runtime": "python3.14", "environments": {"local": {"region": "us-east-1"}}}, "local")
    assert (env.runtime, env.glibc_floor, env.python_version) == ("python3.14", (2, 34), "3.14")
    assert uv_platform("x86_64", env.glibc_floor) == "x86_64-manylinux_2_34"
    assert describe_target("3.14", "arm64", env.glibc_floor) == (
        "manylinux_2_34 = glibc 2.34 for python3.14 on Amazon Linux 2023 (arm64)"
    )
    with pytest.raises(ConfigError, match=r"python3\.15"):
        load_env({"runtime": "python3.15", "environments": {"local": {"region": "us-east-1"}}}, "local")


# ----------------------------------------------------------------------------- identity


def _identity(runtime: str) -> str:
    # No markers and no bytecode: nothing but the runtime's name can tell these layers apart.
    req = Requirement(name="six", version="1.16.0", markers=None, hashes=("sha256:" + "a" * 64,), line="six==1.16.0")
    return layer_identity(
        [req],
        runtime=runtime,
        architecture="x86_64",
        glibc_floor=RUNTIME_GLIBC[runtime],
        builder="uv",
        builder_version="0.13.9",
        options=LayerOptions(),
    ).digest


def test_runtimes_sharing_a_glibc_floor_give_different_layer_identities() -> None:
    """cp312, cp313 and cp314 wheels differ, and so does the site-packages folder name: one floor,
    three layers. A layer keyed by its floor alone would serve 3.12's extensions to 3.14."""
    assert len({RUNTIME_GLIBC[r] for r in AL2023}) == 1
    assert len({_identity(r) for r in AL2023}) == len(AL2023)


# ----------------------------------------------------------------------------- one minor above the floor


def _pkg(tags: tuple[str, ...]) -> PackageInfo:
    return PackageInfo(name="edge", version="1.0", size=1, files=1, wheel_tags=tags)


@pytest.mark.parametrize("runtime", [*AL2023, "python3.11"])
def test_wheel_tag_one_glibc_minor_above_the_floor_is_refused(runtime: str) -> None:
    major, minor = RUNTIME_GLIBC[runtime]
    cp = "cp" + runtime.removeprefix("python").replace(".", "")
    target = {"python_version": runtime, "architecture": "x86_64", "glibc_floor": (major, minor)}
    audit.check_wheel_tags([_pkg((f"{cp}-{cp}-manylinux_{major}_{minor}_x86_64",))], **target)  # the floor itself
    too_new = f"{cp}-{cp}-manylinux_{major}_{minor + 1}_x86_64"
    with pytest.raises(AuditError, match=rf"needs glibc {major}\.{minor + 1}, runtime has {major}\.{minor}"):
        audit.check_wheel_tags([_pkg((too_new,))], **target)


def test_the_accepted_platforms_stop_at_the_floor() -> None:
    plats = manylinux_platforms("x86_64", (2, 34))
    assert plats[0] == "manylinux_2_34_x86_64"
    assert "manylinux_2_35_x86_64" not in plats


@pytest.mark.parametrize("runtime", [*AL2023, "python3.11"])
def test_elf_symbol_one_glibc_minor_above_the_floor_is_refused(tmp_path: Path, runtime: str) -> None:
    major, minor = RUNTIME_GLIBC[runtime]
    at_floor, above = tmp_path / "at", tmp_path / "above"
    wf.native_dist(at_floor, "edge", glibc=["GLIBC_2.2.5", f"GLIBC_{major}.{minor}"])
    wf.native_dist(above, "edge", glibc=["GLIBC_2.2.5", f"GLIBC_{major}.{minor + 1}"])
    version = runtime.removeprefix("python")
    audit.check_elf(at_floor, architecture="x86_64", glibc_floor=(major, minor), python_version=version)
    with pytest.raises(AuditError) as err:
        audit.check_elf(above, architecture="x86_64", glibc_floor=(major, minor), python_version=version)
    assert f"needs GLIBC_{major}.{minor + 1}, {runtime} has {major}.{minor}" in str(err.value)


# ----------------------------------------------------------------------------- bytecode's interpreter


def _fake_python(folder: Path, name: str, version: str) -> Path:
    """An executable that answers the interpreter probe like CPython ``version`` would."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    major, minor = version.split(".")[:2]
    path.write_text(f"#!/bin/sh\necho {version}\necho cpython-{major}{minor}\necho {path}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_bytecode_for_a_runtime_without_its_interpreter_is_refused(tmp_path: Path) -> None:
    """A ``python3.14`` on PATH that is really 3.12 (a link, a shim) must not compile 3.14's bytecode:
    the .pyc would carry 3.12's magic number and every import would fall back to the source."""
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, "python3.14", "3.12.1")
    environ = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home")}
    assert runtime_python.find("3.14", env=environ) is None
    compiler = bytecode.LocalCompiler("3.14", env=environ)
    with pytest.raises(BuildError) as err:
        compiler.version()
    message = str(err.value)
    assert "bytecode for python3.14 must be compiled by a Python 3.14 interpreter, and none was found" in message
    assert "bytecode: false" in message and "--builder docker" in message


def test_bytecode_uses_the_runtimes_own_interpreter_when_there(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, "python3.14", "3.14.0")
    environ = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home")}
    assert bytecode.LocalCompiler("3.14", env=environ).version() == "3.14.0"


# ----------------------------------------------------------------------------- deprecation


def test_a_deprecated_runtime_warns_with_its_date_from_that_day_on() -> None:
    assert deprecation_warning("python3.9", datetime.date(2025, 12, 14)) is None
    for day in (datetime.date(2025, 12, 15), datetime.date(2027, 1, 1)):
        warning = deprecation_warning("python3.9", day)
        assert warning is not None
        assert "python3.9 is deprecated since 2025-12-15" in warning
        assert "python3.14" in warning  # where to go
    assert deprecation_warning("python3.14", datetime.date(2026, 12, 3)) is None
    assert deprecation_warning("python3.12", datetime.date(2026, 12, 3)) is None


def test_preflight_notes_a_deprecated_runtime(tmp_path: Path) -> None:
    """Its interpreter is there, so the check passes, with the deprecation said once (a NOTE)."""
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, "python3.9", "3.9.18")
    env = load_env({"runtime": "python3.9", "environments": {"local": {"region": "us-east-1"}}}, "local")
    environ = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home")}
    check = preflight.check_runtime_python(env, environ)
    assert check.mark is preflight.Mark.NOTE
    assert "deprecated since 2025-12-15" in check.detail
    current = load_env({"runtime": "python3.14", "environments": {"local": {"region": "us-east-1"}}}, "local")
    _fake_python(bin_dir, "python3.14", "3.14.0")
    assert preflight.check_runtime_python(current, environ).mark is preflight.Mark.PASSED


def test_the_readme_table_lists_every_runtime() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Supported runtimes", 1)[1].split("\n## ", 1)[0]
    for runtime in RUNTIMES.values():
        row = next((line for line in section.splitlines() if line.startswith(f"| {runtime.name} ")), None)
        assert row is not None, runtime.name
        assert runtime.os in row and ".".join(map(str, runtime.glibc)) in row
        assert runtime.deprecated.isoformat() in row

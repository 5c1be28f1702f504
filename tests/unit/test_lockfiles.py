"""The lock must be the lock of its pyproject (Poetry's content hash, uv's own check), from the pinned
Poetry major; uv.lock and poetry.lock with one resolved set give one layer identity."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy import lockfiles
from deploy.config import ROOT, LayerOptions, Paths
from deploy.errors import LockError
from deploy.identity import layer_identity
from deploy.lock import load_lock, load_requirements_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PAIR = FIXTURES / "lockpair"


def _copy(root: Path, source: Path) -> Paths:
    backend = root / "backend"
    backend.mkdir(parents=True)
    for path in source.iterdir():
        shutil.copy(path, backend / path.name)
    return Paths(root=root)


def _add_dependency(pyproject: Path, dep: str) -> None:
    text = pyproject.read_text()
    pyproject.write_text(text.replace('    "sniffio==1.3.1",\n', f'    "sniffio==1.3.1",\n    "{dep}",\n'))
    assert dep in pyproject.read_text()


def test_content_hash_is_poetrys_for_the_real_backend() -> None:
    # The committed lock was written by the pinned Poetry, whose hash must be ours to the byte.
    with (ROOT / "backend" / "pyproject.toml").open("rb") as fh:
        pyproject = tomllib.load(fh)
    with (ROOT / "backend" / "poetry.lock").open("rb") as fh:
        recorded = tomllib.load(fh)["metadata"]["content-hash"]
    assert lockfiles.poetry_content_hash(pyproject) == recorded
    lockfiles.check_poetry_fresh(lockfiles.lock_source(Paths()))


def test_pyproject_edited_without_relocking_stops_with_the_command(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    load_requirements_file(paths)
    _add_dependency(paths.backend / "pyproject.toml", "orjson>=3.10")
    with pytest.raises(LockError) as err:
        load_requirements_file(paths)
    assert err.value.exit_code == 3
    assert "backend/pyproject.toml's dependencies changed since backend/poetry.lock was written" in str(err.value)
    assert "`inv lock`" in str(err.value)


def test_an_edit_poetry_does_not_hash_keeps_the_lock(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    pyproject = paths.backend / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"\ndescription = "x"'))
    load_requirements_file(paths)


def test_a_lock_from_another_poetry_major_names_the_file_and_version(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    lock = paths.backend / "poetry.lock"
    text = lock.read_text()
    first, rest = text.split("\n", 1)
    assert "Poetry 2.5.1" in first
    lock.write_text(first.replace("Poetry 2.5.1", "Poetry 1.8.3") + "\n" + rest)
    with pytest.raises(LockError) as err:
        load_requirements_file(paths)
    message = str(err.value)
    assert "backend/poetry.lock was written by Poetry 1.8.3" in message
    assert "locks with Poetry 2.5.1" in message and "`inv lock`" in message


def test_a_pre_2_3_lock_ignores_dependency_groups_as_poetry_does(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    pyproject, lock = paths.backend / "pyproject.toml", paths.backend / "poetry.lock"
    pyproject.write_text(pyproject.read_text() + '\n[dependency-groups]\ndev = ["pytest"]\n')
    with pytest.raises(LockError, match="changed since"):
        load_lock(paths)
    lock.write_text(lock.read_text().replace("Poetry 2.5.1", "Poetry 2.2.0", 1))
    load_lock(paths)  # Poetry < 2.3 hashed without [dependency-groups]; Poetry 2.5 accepts such a lock


def test_both_lock_files_is_ambiguous(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    shutil.copy(PAIR / "uv" / "uv.lock", paths.backend / "uv.lock")
    with pytest.raises(LockError, match=r"both poetry\.lock and uv\.lock"):
        load_requirements_file(paths)


def test_uv_lock_is_chosen_when_it_is_the_one_there(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "uv")
    assert lockfiles.lock_source(paths).tool == "uv"
    reqs = load_requirements_file(paths)
    assert [r.name for r in reqs.requirements] == ["anyio", "idna", "sniffio", "typing-extensions"]
    # The verdict of `uv lock --check` is kept for these exact bytes, so the next build starts no process.
    assert len(list((paths.build / "lock-check").glob("uv-*.ok"))) == 1


def test_uv_lock_older_than_its_pyproject_stops_the_build(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "uv")
    load_requirements_file(paths)
    _add_dependency(paths.backend / "pyproject.toml", "orjson>=3.10")
    with pytest.raises(LockError) as err:
        load_requirements_file(paths)
    assert "changed since backend/uv.lock was written" in str(err.value) and "`inv lock`" in str(err.value)


def test_uv_export_missing_a_main_dependency_is_stale(tmp_path: Path) -> None:
    paths = _copy(tmp_path, PAIR / "uv")
    req = paths.backend / "requirements.txt"
    req.write_text(req.read_text().split("sniffio==")[0])
    with pytest.raises(LockError) as err:
        load_requirements_file(paths)
    assert "sniffio 1.3.1 is a main dependency in backend/uv.lock but missing there" in str(err.value)
    # typing-extensions is reached through anyio (the closure, not only the direct dependencies).
    assert "typing-extensions 4.16.0 is a main dependency" in str(err.value)


@pytest.mark.parametrize("runtime", ["python3.11", "python3.12", "python3.13"])
@pytest.mark.parametrize("architecture", ["x86_64", "arm64"])
def test_one_resolved_set_from_poetry_or_uv_is_one_layer_identity(
    tmp_path: Path, runtime: str, architecture: str
) -> None:
    def identity(tool: str) -> str:
        reqs = load_requirements_file(_copy(tmp_path / tool, PAIR / tool)).requirements
        return layer_identity(
            reqs,
            runtime=runtime,
            architecture=architecture,
            glibc_floor=(2, 34),
            builder="uv",
            builder_version="0.13.9",
            options=LayerOptions(),
        ).digest

    # Poetry writes `python_version >= "3.11" and python_version < "3.13"` where uv writes
    # `python_full_version < '3.13'`: different text, the same pins on every target.
    assert identity("poetry") == identity("uv")


def test_markers_decide_what_the_identity_holds() -> None:
    reqs = load_requirements_file(_copy_to_tmp("uv")).requirements

    def pins(runtime: str) -> tuple[str, ...]:
        return layer_identity(
            reqs,
            runtime=runtime,
            architecture="x86_64",
            glibc_floor=(2, 34),
            builder="uv",
            builder_version="0.13.9",
            options=LayerOptions(),
        ).requirements

    # typing-extensions is pinned only below 3.13: a 3.13 layer holds one package fewer.
    assert any(p.startswith("typing-extensions==") for p in pins("python3.12"))
    assert not any(p.startswith("typing-extensions==") for p in pins("python3.13"))
    assert all(";" not in p for p in pins("python3.12"))


def _copy_to_tmp(tool: str) -> Paths:
    import tempfile

    return _copy(Path(tempfile.mkdtemp(prefix="lockpair-")), PAIR / tool)


def test_uv_export_flags_exist_in_the_pinned_uv() -> None:
    from deploy.relock import UV_EXPORT

    helped = subprocess.run([lockfiles.uv_bin(), "export", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in (f for f in UV_EXPORT if f.startswith("--")):
        assert flag in helped


def _project(tmp_path: Path) -> Path:
    """A copy of the tool and the backend's dependency files: enough for `inv build-layer` to plan."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("tasks.py", "invoke.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "deploy", proj / "deploy", ignore=shutil.ignore_patterns("__pycache__"))
    (proj / "backend").mkdir()
    for name in ("pyproject.toml", "poetry.lock", "requirements.txt"):
        shutil.copy(ROOT / "backend" / name, proj / "backend" / name)
    return proj


def test_inv_build_layer_exits_3_naming_the_command_when_pyproject_moved(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    pyproject = proj / "backend" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('    "boto3>=1.35,<2",\n', '    "boto3>=1.35,<2",\n    "orjson",\n')
    )
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "build-layer", "--env", "local", "--no-remote-cache"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "backend/pyproject.toml's dependencies changed since backend/poetry.lock" in result.stderr
    assert "inv lock" in result.stderr
    assert not (proj / ".build" / "layers").exists()  # stopped before any install


def test_inv_lock_refuses_a_lock_from_a_newer_poetry_before_running_anything(tmp_path: Path) -> None:
    from deploy.relock import relock

    paths = _copy(tmp_path, PAIR / "poetry")
    lock = paths.backend / "poetry.lock"
    lock.write_text(lock.read_text().replace("Poetry 2.5.1", "Poetry 3.0.0", 1))
    before = {p.name: p.read_bytes() for p in paths.backend.iterdir()}
    with pytest.raises(LockError, match=r"written by Poetry 3\.0\.0, newer than the pinned Poetry 2\.5\.1"):
        relock(paths, tools=tmp_path / "no-tools")
    assert {p.name: p.read_bytes() for p in paths.backend.iterdir()} == before
    assert not (tmp_path / "no-tools").exists()  # no Poetry was installed for it


def test_read_toml_names_the_file_and_keeps_each_callers_hint(tmp_path: Path) -> None:
    """One reader serves the lock (full path, a regenerate hint when malformed) and the pyproject (shown as
    backend/pyproject.toml, no such hint: regenerating the lock cannot fix a malformed pyproject)."""
    backend = tmp_path / "backend"
    backend.mkdir()
    bad = backend / "pyproject.toml"
    bad.write_text("[project\n")
    with pytest.raises(LockError, match=r"^backend/pyproject\.toml is not valid TOML") as err:
        lockfiles.read_toml(bad, shown="backend/pyproject.toml")
    assert err.value.hint is None
    with pytest.raises(LockError, match=f"^{bad} is not valid TOML") as err:
        lockfiles.read_toml(bad, invalid_hint="run `inv lock`")
    assert err.value.hint == "run `inv lock`"
    with pytest.raises(LockError, match=r"is missing") as err:
        lockfiles.read_toml(backend / "uv.lock")
    assert err.value.hint == f"run `{lockfiles.LOCK_COMMAND}`"
    # A folder where the file should be: unreadable, still a LockError naming it (not a raw OSError).
    (backend / "poetry.lock").mkdir()
    with pytest.raises(LockError, match=r"poetry\.lock is unreadable"):
        lockfiles.read_toml(backend / "poetry.lock")

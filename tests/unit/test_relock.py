"""`inv lock`: the pinned Poetry in its own environment, re-lock and export all or nothing; uv for a uv.lock.

These resolve against PyPI, hence the ``network`` marker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import lockfiles, relock
from deploy.config import ROOT, Paths
from deploy.errors import LockError
from deploy.lock import load_requirements_file

pytestmark = pytest.mark.network
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 45

PAIR = Path(__file__).resolve().parent.parent / "fixtures" / "lockpair"
FILES = ("pyproject.toml", "poetry.lock", "uv.lock", "requirements.txt")
NO_SUCH = "no-such-package-for-lock-tests-4b1d==1.0"


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Poetry environment for the module: installing it is the slow part."""
    return tmp_path_factory.mktemp("tools")


def _copy(root: Path, source: Path) -> Paths:
    (root / "backend").mkdir(parents=True)
    for path in source.iterdir():
        shutil.copy(path, root / "backend" / path.name)
    return Paths(root=root)


def _snapshot(paths: Paths) -> dict[str, bytes]:
    return {n: (paths.backend / n).read_bytes() for n in FILES if (paths.backend / n).exists()}


def test_poetry_goes_into_its_own_environment_once(tools: Path) -> None:
    exe = relock.poetry_bin(tools)
    assert exe == tools / f"poetry-{lockfiles.poetry_version()}" / "bin" / "poetry"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    assert lockfiles.poetry_version() in version
    stamp = exe.parent.parent / ".pins"
    before = stamp.stat().st_mtime_ns
    assert relock.poetry_bin(tools) == exe and stamp.stat().st_mtime_ns == before  # not reinstalled
    # Never into the interpreter running the tool.
    assert subprocess.run([sys.executable, "-c", "import poetry"], capture_output=True, check=False).returncode != 0


@pytest.mark.parametrize(
    ("edit", "fresh"),
    [
        (None, True),
        (('    "sniffio==1.3.1",\n', '    "sniffio==1.3.1",\n    "six",\n'), False),
        (('version = "0.1.0"', 'version = "0.1.0"\ndescription = "only metadata"'), True),
        (('requires-python = ">=3.11,<3.14"', 'requires-python = ">=3.12,<3.14"'), False),
    ],
)
def test_our_freshness_verdict_is_poetry_check_lock(
    tmp_path: Path, tools: Path, edit: tuple[str, str] | None, fresh: bool
) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    pyproject = paths.backend / "pyproject.toml"
    if edit is not None:
        pyproject.write_text(pyproject.read_text().replace(*edit))
    poetry = subprocess.run(
        [str(relock.poetry_bin(tools)), "check", "--lock"],
        cwd=paths.backend,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "POETRY_VIRTUALENVS_CREATE": "false"},
    )
    assert (poetry.returncode == 0) is fresh, poetry.stdout + poetry.stderr
    try:
        lockfiles.check_poetry_fresh(lockfiles.lock_source(paths))
        ours = True
    except LockError:
        ours = False
    assert ours is fresh


def test_lock_add_with_poetry_writes_all_three_files(tmp_path: Path, tools: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    result = relock.relock(paths, add="six==1.17.0", tools=tools)
    assert result.tool == "poetry" and result.added == ("six==1.17.0",)
    assert set(result.changed) == {"pyproject.toml", "poetry.lock", "requirements.txt"}
    assert "six" in (paths.backend / "pyproject.toml").read_text()
    assert [r.name for r in load_requirements_file(paths).requirements] == [
        "anyio",
        "idna",
        "six",
        "sniffio",
        "typing-extensions",
    ]
    again = relock.relock(paths, tools=tools)  # already locked: nothing to rewrite
    assert again.changed == () and again.added == ()
    assert not [p for p in paths.build.iterdir() if p.name.startswith("relock-")]


@pytest.mark.parametrize("tool", ["poetry", "uv"])
def test_lock_add_of_a_package_that_does_not_resolve_changes_nothing(tmp_path: Path, tools: Path, tool: str) -> None:
    paths = _copy(tmp_path, PAIR / tool)
    before = _snapshot(paths)
    with pytest.raises(LockError) as err:
        relock.relock(paths, add=NO_SUCH, tools=tools)
    assert "backend/ was not changed" in str(err.value) and "no-such-package-for-lock-tests-4b1d" in str(err.value)
    assert _snapshot(paths) == before
    assert not [p for p in paths.build.iterdir() if p.name.startswith("relock-")]


def test_lock_add_with_uv_keeps_uv(tmp_path: Path, tools: Path) -> None:
    paths = _copy(tmp_path, PAIR / "uv")
    result = relock.relock(paths, add="six==1.17.0", tools=tools)
    assert result.tool == "uv" and result.added == ("six==1.17.0",)
    assert not (paths.backend / "poetry.lock").exists()
    assert "six" in {r.name for r in load_requirements_file(paths).requirements}


def test_relocking_a_pyproject_edited_by_hand_unblocks_the_build(tmp_path: Path, tools: Path) -> None:
    paths = _copy(tmp_path, PAIR / "poetry")
    pyproject = paths.backend / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"sniffio==1.3.1",\n', '"sniffio==1.3.1",\n    "six==1.17.0",\n')
    )
    with pytest.raises(LockError, match="changed since"):
        load_requirements_file(paths)
    relock.relock(paths, tools=tools)
    assert "six" in {r.name for r in load_requirements_file(paths).requirements}


def test_inv_lock_add_on_a_copy_of_the_backend(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("tasks.py", "invoke.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "deploy", proj / "deploy", ignore=shutil.ignore_patterns("__pycache__"))
    (proj / "backend").mkdir()
    for name in ("pyproject.toml", "poetry.lock", "requirements.txt"):
        shutil.copy(ROOT / "backend" / name, proj / "backend" / name)
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "lock", "--add", "orjson"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "+ orjson==" in result.stderr
    assert "rewrote backend/pyproject.toml, backend/poetry.lock, backend/requirements.txt" in result.stderr
    paths = Paths(root=proj)
    assert "orjson" in {r.name for r in load_requirements_file(paths).requirements}
    # Only orjson joined: every pin the backend had stays where it was.
    old = {r.name: r.version for r in load_requirements_file(Paths()).requirements}
    new = {r.name: r.version for r in load_requirements_file(paths).requirements}
    assert {k: v for k, v in new.items() if k != "orjson"} == old


def test_an_export_that_fails_after_a_successful_add_changes_nothing(
    tmp_path: Path, tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `poetry add` already rewrote pyproject.toml and the lock (in the scratch copy) when the export fails.
    paths = _copy(tmp_path, PAIR / "poetry")
    before = _snapshot(paths)
    monkeypatch.setattr(relock, "POETRY_EXPORT", ("export", "--no-such-export-flag"))
    with pytest.raises(LockError, match="`poetry export --only main` failed"):
        relock.relock(paths, add="six==1.17.0", tools=tools)
    assert _snapshot(paths) == before

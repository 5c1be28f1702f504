"""The real backend layer, built from PyPI twice on two "machines": same identity, same bytes.

Needs PyPI (marked ``network``); each checkout holds only what a layer build reads
(backend/requirements.txt and backend/poetry.lock) and has its own ``.build``. Each build
runs in its own process from its own venv at another path (installers write that venv's
interpreter into console scripts and their RECORD hashes), with another umask and locale.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from deploy.artifact import sha256_file
from deploy.build import build_layer, layer_plan
from deploy.config import ROOT, EnvConfig, Paths
from deploy.content_cache import ENV_DIR
from deploy.lock import load_locked_requirements

pytestmark = pytest.mark.network
# Seconds its tests take together (3 e2e workers or 2 test workers on 2 cores, 2026-12-03): the xdist
# scheduler starts the costliest modules first (tests/conftest.py).
XDIST_SECONDS = 35

BACKEND = ROOT / "backend"


def _checkout(root: Path) -> Paths:
    (root / "backend").mkdir(parents=True)
    for name in ("requirements.txt", "poetry.lock", "pyproject.toml"):
        shutil.copy(BACKEND / name, root / "backend" / name)
    return Paths(root=root)


def _env(paths: Paths, builder: str = "uv") -> EnvConfig:
    return EnvConfig(name="ci", region="us-east-1", runtime="python3.12", builder=builder, paths=paths)


_BUILD = """
import json, os, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from deploy.build import build_layer, layer_plan
from deploy.config import EnvConfig, Paths
env = EnvConfig(name="ci", region="us-east-1", runtime="python3.12", paths=Paths(root=Path(sys.argv[1])))
result = build_layer(layer_plan(env))
print(json.dumps({"reused": result.reused, "identity": result.artifact.identity, "path": str(result.artifact.path),
                  "sha256": result.artifact.sha256}))
"""


def _venv(path: Path) -> Path:
    """A fresh venv at ``path`` that sees this project and the tooling already installed here."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next(path.glob("lib/python3.*/site-packages"))
    (site / "tooling.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    return path / "bin" / "python"


def _build_elsewhere(root: Path, venv: Path, *, umask: str, locale: str, cache: Path) -> dict[str, str]:
    python = _venv(venv)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL"}}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", LC_ALL=locale)
    env[ENV_DIR] = str(cache)  # each machine its own content cache: nothing compiled is shared
    proc = subprocess.run(
        [str(python), "-c", _BUILD, str(root), umask], env=env, cwd=root, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    if not (BACKEND / "requirements.txt").is_file():
        pytest.fail("backend/requirements.txt is missing; the backend project must export it")
    one = tmp_path_factory.mktemp("laptop")
    two = tmp_path_factory.mktemp("ci-runner") / "deeper" / "checkout"
    first = _build_elsewhere(_checkout(one).root, one / "venv", umask="022", locale="C.UTF-8", cache=one / "cache")
    second = _build_elsewhere(_checkout(two).root, two / "other-venv", umask="077", locale="C", cache=two / "cache")
    assert not first["reused"] and not second["reused"]
    assert first["identity"] == second["identity"]
    return Path(first["path"]), Path(second["path"]), first["sha256"]


def test_a_warm_content_cache_gives_the_same_bytes(
    two_builds: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The first machine builds again in a new checkout with its cache now full of the .pyc files of its
    first build: every hit must be the bytes a fresh compile gives."""
    first, _, sha = two_builds
    cache = first.parents[2] / "cache"  # <machine>/.build/layers/<id>.zip
    with zipfile.ZipFile(first) as zf:
        pycs = sum(1 for name in zf.namelist() if name.endswith(".pyc"))
    assert pycs > 500 and sum(1 for _ in (cache / "pyc").rglob("*")) >= pycs  # the first build filled it
    entries = sum(1 for p in cache.rglob("*") if p.is_file())
    again = tmp_path_factory.mktemp("laptop-again")
    third = _build_elsewhere(_checkout(again).root, again / "venv", umask="022", locale="C.UTF-8", cache=cache)
    assert not third["reused"] and third["sha256"] == sha
    assert sum(1 for p in cache.rglob("*") if p.is_file()) == entries  # all hits: nothing new written


def test_two_checkouts_build_identical_bytes(two_builds: tuple[Path, Path, str]) -> None:
    first, second, sha = two_builds
    assert first != second
    assert first.read_bytes() == second.read_bytes()
    assert first.name == second.name  # named by identity
    assert sha256_file(first) == sha


def test_layout_dist_info_and_bytecode(two_builds: tuple[Path, Path, str]) -> None:
    with zipfile.ZipFile(two_builds[0]) as zf:
        names = zf.namelist()
        records = {n: zf.read(n).decode() for n in names if n.endswith(".dist-info/RECORD")}
    assert all(n.startswith("python/") for n in names)
    assert any(n.startswith("python/fastapi/") for n in names)
    assert any(n.startswith("python/sqlalchemy/") for n in names)
    assert any(n.endswith(".dist-info/METADATA") for n in names)
    sources = {n for n in names if n.endswith(".py")}
    pycs = {n for n in names if n.endswith(".pyc")}
    assert len(pycs) == len(sources) > 500 and all(".cpython-312.pyc" in n for n in pycs)
    assert not any(n.startswith("python/bin/") for n in names)
    # Every RECORD names only files the zip holds: no bin/ script hashed with a machine's #! line.
    listed = {f"python/{line.split(',')[0]}" for text in records.values() for line in text.splitlines()}
    assert listed <= set(names)
    assert not any("/bin/" in n or n.startswith("python/bin/") for n in listed)


def test_importlib_metadata_reads_the_locked_versions(two_builds: tuple[Path, Path, str], tmp_path: Path) -> None:
    with zipfile.ZipFile(two_builds[0]) as zf:
        zf.extractall(tmp_path)
    found = {
        dist.metadata["Name"].lower().replace("_", "-"): dist.version
        for dist in importlib.metadata.distributions(path=[str(tmp_path / "python")])
    }
    locked = {r.name: r.version for r in load_locked_requirements(Paths()) if "win32" not in (r.markers or "")}
    assert found == locked


def test_pip_builder_installs_the_same_versions(tmp_path: Path) -> None:
    paths = _checkout(tmp_path)
    artifact = build_layer(layer_plan(_env(paths, builder="pip"))).artifact
    uv_versions = {r.name: r.version for r in load_locked_requirements(paths) if "win32" not in (r.markers or "")}
    assert {p.name.lower().replace("_", "-"): p.version for p in artifact.packages} == uv_versions

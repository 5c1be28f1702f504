"""The real backend layer, built from PyPI twice in two separate checkouts: same bytes.

Needs PyPI (marked ``network``); each checkout holds only what a layer build reads
(backend/requirements.txt and backend/poetry.lock) and has its own ``.build``.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import zipfile
from pathlib import Path

import pytest

from deploy.artifact import sha256_file
from deploy.build import build_layer, layer_plan
from deploy.config import ROOT, EnvConfig, Paths
from deploy.lock import load_locked_requirements

pytestmark = pytest.mark.network

BACKEND = ROOT / "backend"


def _checkout(root: Path) -> Paths:
    (root / "backend").mkdir(parents=True)
    for name in ("requirements.txt", "poetry.lock"):
        shutil.copy(BACKEND / name, root / "backend" / name)
    return Paths(root=root)


def _env(paths: Paths, builder: str = "uv") -> EnvConfig:
    return EnvConfig(name="ci", region="us-east-1", runtime="python3.12", builder=builder, paths=paths)


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    if not (BACKEND / "requirements.txt").is_file():
        pytest.fail("backend/requirements.txt is missing; the backend project must export it")
    results = []
    for copy in ("first", "second"):
        paths = _checkout(tmp_path_factory.mktemp(copy))
        result = build_layer(layer_plan(_env(paths)))
        assert not result.reused
        results.append(result.artifact)
    first, second = results
    assert first.identity == second.identity
    return first.path, second.path, first.sha256


def test_two_checkouts_build_identical_bytes(two_builds: tuple[Path, Path, str]) -> None:
    first, second, sha = two_builds
    assert first != second
    assert first.read_bytes() == second.read_bytes()
    assert first.name == second.name  # named by identity
    assert sha256_file(first) == sha


def test_layout_dist_info_and_no_bytecode(two_builds: tuple[Path, Path, str]) -> None:
    names = zipfile.ZipFile(two_builds[0]).namelist()
    assert all(n.startswith("python/") for n in names)
    assert any(n.startswith("python/fastapi/") for n in names)
    assert any(n.startswith("python/sqlalchemy/") for n in names)
    assert any(n.endswith(".dist-info/METADATA") for n in names)
    assert not any(n.endswith((".pyc", ".pyo")) or "/__pycache__/" in n for n in names)
    assert not any(n.startswith("python/bin/") for n in names)


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

"""Layer builds with a fake installer (no network) and function builds in throwaway git repos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from deploy.artifact import load_manifest, sha256_file
from deploy.build import (
    FUNCTION_ZIPPED_LIMIT,
    build_function,
    build_layer,
    function_plan,
    layer_plan,
    post_process,
    top_packages,
    version_info,
)
from deploy.config import EnvConfig, LayerOptions, Paths
from deploy.errors import AuditError, BuildError
from deploy.install import CompilesHere
from tests.unit.runtime_pyc import bytecode_magic, runtime_co_filename

LOCKS = Path(__file__).resolve().parent.parent / "fixtures" / "locks"


def _dist(site: Path, name: str, version: str, files: dict[str, bytes], tag: str = "py3-none-any") -> None:
    """Lay out one installed wheel the way an installer leaves it in --target."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
    (info / "INSTALLER").write_text("fake\n")
    record = []
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        record.append(f"{rel},,")
    record += [f"{info.name}/{f},," for f in ("METADATA", "WHEEL", "INSTALLER", "RECORD")]
    (info / "RECORD").write_text("\n".join(record) + "\n")


class FakeInstaller(CompilesHere):
    """Installs what the requirements name, as tiny pure-Python wheels (compiled by the host's runtime Python)."""

    name = "fake"

    def __init__(
        self,
        *,
        fail: bool = False,
        extra: dict[str, str] | None = None,
        files: dict[str, bytes] | None = None,
        merges: bool = False,
    ) -> None:
        self.merges_into_target = merges  # it does merge (_dist makes folders with exist_ok)
        self.fail = fail
        self.extra = extra or {}
        self.files = files or {}  # extra files for every installed package, "{name}" replaced
        self.calls: list[dict[str, object]] = []

    def version(self) -> str:
        return "1.0"

    def install(
        self,
        requirements: Path,
        target: Path,
        *,
        python_version: str,
        architecture: str,
        glibc_floor: tuple[int, int],
    ) -> None:
        self.calls.append(
            {
                "requirements": requirements.read_text(),
                "python": python_version,
                "arch": architecture,
                "glibc": glibc_floor,
            }
        )
        _dist(target, "partial", "0", {"partial/__init__.py": b""})
        if self.fail:
            raise BuildError("fake install failed: six has no wheel for the target")
        (target / "partial-0.dist-info").rename(target / "gone")
        shutil.rmtree(target / "gone")
        shutil.rmtree(target / "partial")
        for line in requirements.read_text().splitlines():
            if "==" not in line:
                continue
            name, version = line.split(" ")[0].split("==")
            _dist(
                target,
                name,
                version,
                {
                    f"{name}/__init__.py": f"__version__ = {version!r}\n".encode(),
                    f"{name}/tests/test_it.py": b"def test(): pass\n",
                    f"{name}/__pycache__/__init__.cpython-312.pyc": b"\x00junk",
                    **{rel.format(name=name): data for rel, data in self.files.items()},
                },
            )
            # Like uv and pip: a console script whose #! names this machine's interpreter, in RECORD.
            with (target / f"{name}-{version}.dist-info" / "RECORD").open("a") as record:
                record.write(f"bin/{name},sha256=host-specific,17\n")
        for name, version in self.extra.items():
            _dist(target, name, version, {f"{name}/__init__.py": b"# runtime sdk\n" * 100})
        (target / "bin").mkdir(exist_ok=True)
        (target / "bin" / "script").write_text("#!/host/python3\n")


def _checkout(root: Path, case: str = "good") -> Paths:
    backend = root / "backend"
    backend.mkdir(parents=True, exist_ok=True)
    shutil.copy(LOCKS / case / "requirements.txt", backend / "requirements.txt")
    for name in ("poetry.lock", "pyproject.toml"):
        shutil.copy(LOCKS / "good" / name, backend / name)
    return Paths(root=root)


def _env(paths: Paths, **kwargs: object) -> EnvConfig:
    return EnvConfig(name="test", region="us-east-1", paths=paths, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Layer


def test_layer_plan_paths_and_identity(tmp_path: Path) -> None:
    plan = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller())
    assert plan.zip_path == tmp_path / ".build" / "layers" / f"{plan.digest}.zip"
    assert plan.manifest_path.name == f"{plan.digest}.json"
    assert plan.sbom_path.name == f"{plan.digest}.cdx.json"
    assert plan.s3_key == f"lambda/layer-{plan.digest}.zip"
    assert plan.identity.builder == "fake" and plan.identity.builder_version == "1.0"
    arm = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller(), architecture="arm64")
    assert arm.digest != plan.digest and arm.architecture == "arm64"
    py311 = layer_plan(_env(_checkout(tmp_path), runtime="python3.11"), installer=FakeInstaller())
    assert py311.glibc_floor == (2, 26) and py311.digest != plan.digest


def test_layer_plan_refuses_stale_requirements(tmp_path: Path) -> None:
    from deploy.errors import LockError

    with pytest.raises(LockError, match=r"is stale: idna is 3\.9"):
        layer_plan(_env(_checkout(tmp_path, "stale")), installer=FakeInstaller())


def test_build_layer_layout_manifest_sbom_and_reuse(tmp_path: Path) -> None:
    installer = FakeInstaller()
    plan = layer_plan(_env(_checkout(tmp_path)), installer=installer)
    messages: list[str] = []
    result = build_layer(plan, progress=messages.append)
    assert not result.reused
    art = result.artifact
    assert art.kind == "layer" and art.identity == plan.digest and art.path == plan.zip_path
    assert art.sha256 == sha256_file(plan.zip_path)
    assert installer.calls[0]["glibc"] == (2, 34)
    # The installer got exactly the canonical lines the identity hashed.
    assert [line for line in str(installer.calls[0]["requirements"]).splitlines() if "==" in line] == list(
        plan.identity.requirements
    )
    names = zipfile.ZipFile(art.path).namelist()
    assert all(n.startswith("python/") for n in names)
    assert "python/six/__init__.py" in names and "python/six-1.17.0.dist-info/METADATA" in names
    assert not any(n.startswith("python/bin/") for n in names)
    assert "python/six/tests/test_it.py" in names  # strip_tests is off
    # Bytecode: every .py compiled for the runtime, the wheel's own junk .pyc replaced.
    pycs = sorted(n for n in names if n.endswith(".pyc"))
    assert pycs == sorted(
        n.replace(n.rsplit("/", 1)[-1], "__pycache__/" + n.rsplit("/", 1)[-1][:-3] + ".cpython-312.pyc")
        for n in names
        if n.endswith(".py")
    )
    with zipfile.ZipFile(art.path) as zf:
        pyc = zf.read("python/six/__pycache__/__init__.cpython-312.pyc")
        record = zf.read("python/six-1.17.0.dist-info/RECORD").decode()
    # The runtime's (python3.12's) magic and marshal, not the host's: CI also runs these tests on 3.11 and 3.13.
    assert pyc[:4] == bytecode_magic() and int.from_bytes(pyc[4:8], "little") == 1  # unchecked-hash
    assert runtime_co_filename(pyc) == "/opt/python/six/__init__.py"
    # RECORD lists exactly the files the zip holds for six: no bin/ script, no dropped file.
    listed = {line.split(",")[0] for line in record.splitlines()}
    assert {f"python/{rel}" for rel in listed} == {n for n in names if n.startswith(("python/six/", "python/six-"))}
    assert "six/__pycache__/__init__.cpython-312.pyc" in listed
    assert plan.identity.bytecode is not None and plan.identity.bytecode.startswith("cpython-3.12.")
    assert {p.name for p in art.packages} == {"idna", "six"}
    assert load_manifest(plan.manifest_path) == art
    sbom = json.loads(plan.sbom_path.read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert [c["purl"] for c in sbom["components"]] == ["pkg:pypi/idna@3.10", "pkg:pypi/six@1.17.0"]
    assert sbom["components"][1]["hashes"][0] == {"alg": "SHA-256", "content": "a" * 64}
    assert not list((tmp_path / ".build" / "tmp").iterdir())

    again = build_layer(plan, progress=messages.append)
    assert again.reused and again.artifact == art
    assert len(installer.calls) == 1
    assert messages[-1].startswith(f"layer {plan.digest[:12]} already built")

    sbom_bytes = plan.sbom_path.read_bytes()
    forced = build_layer(plan, force=True)
    assert not forced.reused
    assert forced.artifact.sha256 == art.sha256  # same inputs, same bytes
    assert plan.sbom_path.read_bytes() == sbom_bytes


def test_tampered_zip_is_rebuilt(tmp_path: Path) -> None:
    installer = FakeInstaller()
    plan = layer_plan(_env(_checkout(tmp_path)), installer=installer)
    first = build_layer(plan).artifact
    plan.zip_path.write_bytes(b"not the zip")
    second = build_layer(plan)
    assert not second.reused and second.artifact.sha256 == first.sha256
    assert len(installer.calls) == 2


def test_noop_build_hashes_once_then_trusts_the_unchanged_file_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The no-op path re-hashes only a zip whose inode, size, mtime or ctime moved; a rewrite that keeps
    the size and puts the mtime back still changes ctime, so it is caught and rebuilt."""
    import deploy.artifact

    installer = FakeInstaller()
    plan = layer_plan(_env(_checkout(tmp_path)), installer=installer)
    first = build_layer(plan).artifact
    hashed: list[Path] = []
    real = deploy.artifact.sha256_file
    monkeypatch.setattr(deploy.artifact, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert build_layer(plan).reused and hashed == [plan.zip_path]  # hashed, status recorded
    assert build_layer(plan).reused and hashed == [plan.zip_path]  # trusted: no second hash

    data = bytearray(plan.zip_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size
    before = plan.zip_path.stat()
    plan.zip_path.write_bytes(bytes(data))
    os.utime(plan.zip_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    rebuilt = build_layer(plan)
    assert not rebuilt.reused and rebuilt.artifact.sha256 == first.sha256
    assert len(installer.calls) == 2


def test_zip_without_manifest_is_not_trusted(tmp_path: Path) -> None:
    installer = FakeInstaller()
    plan = layer_plan(_env(_checkout(tmp_path)), installer=installer)
    build_layer(plan)
    plan.manifest_path.unlink()
    assert not build_layer(plan).reused


def test_failed_install_leaves_nothing_behind(tmp_path: Path) -> None:
    plan = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller(fail=True))
    with pytest.raises(BuildError, match="six has no wheel"):
        build_layer(plan)
    assert not plan.zip_path.exists() and not plan.manifest_path.exists()
    assert not list((tmp_path / ".build" / "tmp").iterdir())


def test_interrupt_leaves_nothing_behind(tmp_path: Path) -> None:
    class Interrupted(FakeInstaller):
        def install(self, requirements: Path, target: Path, **kwargs: object) -> None:  # type: ignore[override]
            (target / "half").write_text("x")
            raise KeyboardInterrupt

    plan = layer_plan(_env(_checkout(tmp_path)), installer=Interrupted())
    with pytest.raises(KeyboardInterrupt):
        build_layer(plan)
    assert not list((tmp_path / ".build" / "tmp").iterdir())
    assert not plan.manifest_path.exists()


def test_exclude_runtime_boto_and_strip_tests(tmp_path: Path) -> None:
    options = LayerOptions(exclude_runtime_boto=True, strip_tests=True)
    extra = {"boto3": "0.0.1", "botocore": "0.0.1", "s3transfer": "0.0.1", "jmespath": "1.0.1"}
    plan = layer_plan(_env(_checkout(tmp_path), layer=options), installer=FakeInstaller(extra=extra))
    result = build_layer(plan)
    names = zipfile.ZipFile(result.artifact.path).namelist()
    assert not any(n.split("/")[1].startswith(("boto3", "botocore", "s3transfer")) for n in names)
    assert "python/jmespath/__init__.py" in names  # not part of what the runtime guarantees to ship
    assert not any("/tests/" in n for n in names)
    assert any("boto3 is pinned at 0.0.1" in w for w in result.warnings)
    assert {p.name for p in result.artifact.packages} == {"idna", "jmespath", "six"}


def test_post_process_without_boto_pins_no_warning(tmp_path: Path) -> None:
    _dist(tmp_path, "six", "1.17.0", {"six.py": b""})
    assert post_process(tmp_path, LayerOptions(exclude_runtime_boto=True), runtime="python3.12") == []
    assert (tmp_path / "six.py").exists()


def test_every_member_but_the_records_is_deflated_before_the_zip_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed files are deflated beside the audit, each .pyc once the compile has written
    them; only the RECORDs (rewritten after the compile) are left for write_zip."""
    from deploy import archive, build

    left: list[str] = []
    real_write_zip = archive.write_zip

    def write_zip(entries: list[archive.Entry], dest: Path, **kwargs: object) -> archive.ZipResult:
        ahead = kwargs.pop("ahead")
        assert isinstance(ahead, archive.Precompressor)
        left.extend(e.name for e in entries if ahead.take(e, build.LAYER_COMPRESSLEVEL) is None)
        # The entries the build made without walking the tree again are the ones a walk finds.
        root = Path(str(entries[0].source).removesuffix(entries[0].name))
        assert entries == archive.collect(root, keep_bytecode=True)
        return real_write_zip(entries, dest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "write_zip", write_zip)
    result = build_layer(layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller()))
    names = zipfile.ZipFile(result.artifact.path).namelist()
    assert any(n.endswith(".pyc") for n in names)
    assert sorted(left) == sorted(n for n in names if n.endswith(".dist-info/RECORD"))


def test_a_spare_tree_with_anything_left_in_it_gives_the_same_bytes(tmp_path: Path) -> None:
    """deploy.scratch: an installer that merges starts from the last build's folders. Whatever is
    found in them (a stray file, another package's metadata, old bytecode, a link) never reaches
    the zip: the rebuild is byte-identical to a build from an empty folder."""
    fresh = build_layer(layer_plan(_env(_checkout(tmp_path / "a")), installer=FakeInstaller())).artifact
    assert not (tmp_path / "a" / ".build" / "tmp" / "spare-tree").exists()  # pip-like: never kept

    plan = layer_plan(_env(_checkout(tmp_path / "b")), installer=FakeInstaller(merges=True))
    first = build_layer(plan).artifact
    spare = tmp_path / "b" / ".build" / "tmp" / "spare-tree"
    assert (spare / "python" / "six" / "__pycache__").is_dir()  # folders kept ...
    assert not [p for p in spare.rglob("*") if not p.is_dir()]  # ... no file, no link
    assert not list(spare.glob("python/*.dist-info"))
    assert [p.name for p in (tmp_path / "b" / ".build" / "tmp").iterdir()] == ["spare-tree"]

    outside = tmp_path / "outside.txt"
    outside.write_text("not part of any tree")
    (spare / "python" / "stray.py").write_text("x = 1\n")
    (spare / "python" / "six" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\x00old")
    (spare / "python" / "gone-1.0.dist-info").mkdir()
    (spare / "python" / "gone-1.0.dist-info" / "METADATA").write_text("Name: gone\nVersion: 1.0\n")
    (spare / "python" / "link.txt").symlink_to(outside)
    (spare / "python" / "emptypkg" / "sub").mkdir(parents=True)  # a package this build does not have

    second = build_layer(plan, force=True).artifact
    assert second.sha256 == first.sha256 == fresh.sha256
    assert outside.read_text() == "not part of any tree"
    assert not [p for p in spare.rglob("*") if not p.is_dir()]

    # A build killed before its cleanup (SIGKILL) left its folder, holding the spare tree: the
    # next build removes the folder and takes the tree back as its spare.
    killed = tmp_path / "b" / ".build" / "tmp" / "layer-killed-1234"
    killed.mkdir()
    spare.rename(killed / "root")
    (killed / "root" / "python" / "six" / "__init__.py").write_text("stale = True\n")
    os.utime(killed, (0, 0))
    messages: list[str] = []
    assert build_layer(plan, force=True, progress=messages.append).artifact.sha256 == first.sha256
    assert f"removed {killed}, left by a build that was killed" in messages
    assert [p.name for p in (tmp_path / "b" / ".build" / "tmp").iterdir()] == ["spare-tree"]

    failing = layer_plan(_env(_checkout(tmp_path / "b")), installer=FakeInstaller(fail=True, merges=True))
    with pytest.raises(BuildError, match="fake install failed"):
        build_layer(failing, force=True)
    assert [p.name for p in (tmp_path / "b" / ".build" / "tmp").iterdir()] == ["spare-tree"]
    assert not [p for p in spare.rglob("*") if not p.is_dir()]  # a failed build gives it back empty too


def test_a_running_build_is_never_reaped_by_another(tmp_path: Path) -> None:
    """Another build's reap, however late, leaves a running build's folder alone (it holds a lock)."""
    from deploy import scratch

    reaped: list[list[str]] = []

    class Reaping(FakeInstaller):
        def install(self, requirements: Path, target: Path, **kwargs: Any) -> None:  # type: ignore[override]
            super().install(requirements, target, **kwargs)
            tmp = tmp_path / ".build" / "tmp"
            reaped.append(scratch.reap(tmp, now=time.time() + 10 * scratch.STALE_AFTER_S))

    result = build_layer(layer_plan(_env(_checkout(tmp_path)), installer=Reaping(merges=True)))
    assert reaped == [[]] and zipfile.ZipFile(result.artifact.path).testzip() is None


def test_post_process_drops_shipped_bytecode_but_never_through_a_link(tmp_path: Path) -> None:
    """Wheels ship __pycache__ folders and legacy .pyc/.pyo files (for another Python, or
    timestamped): their files all go. A link to a folder outside the tree is not walked into."""
    site, outside = tmp_path / "site", tmp_path / "outside"
    _dist(site, "six", "1.17.0", {"six.py": b""})
    for rel in ("six_old.pyc", "pkg/legacy.pyo", "pkg/__pycache__/m.cpython-39.pyc", "pkg/deep/__pycache__/x.pyc"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"\x00stale")
    (site / "pkg" / "keep.py").write_text("")
    (outside / "__pycache__").mkdir(parents=True)
    (outside / "__pycache__" / "theirs.pyc").write_bytes(b"")
    (outside / "theirs.pyc").write_bytes(b"")
    (site / "linked").symlink_to(outside, target_is_directory=True)

    post_process(site, LayerOptions(), runtime="python3.12")

    left = sorted(str(p.relative_to(site)) for p in site.rglob("*") if not p.is_dir() and ".dist-info" not in str(p))
    assert left == ["pkg/keep.py", "six.py"]
    assert not any((site / "pkg" / "__pycache__").iterdir())  # the folder stays, empty, for the compile
    assert (outside / "__pycache__" / "theirs.pyc").is_file() and (outside / "theirs.pyc").is_file()


def test_top_packages_shares_of_the_budget(tmp_path: Path) -> None:
    plan = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller(extra={"big": "1.0"}))
    art = build_layer(plan).artifact
    rows = top_packages(art, 2)
    assert len(rows) == 2
    assert rows[0][0].name == "big"
    assert rows[0][0].size >= rows[1][0].size
    assert rows[0][1] == pytest.approx(rows[0][0].size / 262_144_000)


def test_over_budget_layer_is_refused(tmp_path: Path) -> None:
    plan = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller())
    with pytest.raises(AuditError, match="size budget exceeded"):
        build_layer(plan, function_unzipped=262_144_000)
    assert not plan.manifest_path.exists()


def test_reused_layer_is_checked_against_the_grown_function(tmp_path: Path) -> None:
    plan = layer_plan(_env(_checkout(tmp_path)), installer=FakeInstaller())
    built = build_layer(plan).artifact
    with pytest.raises(AuditError, match="size budget exceeded"):
        build_layer(plan, function_unzipped=262_144_000 - built.unzipped_size + 1)
    assert build_layer(plan, function_unzipped=1000).reused


# ---------------------------------------------------------------------------
# Function code


def _git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    }
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout


def _function_map(root: Path, functions: dict[str, tuple[str, list[str]]]) -> None:
    """infra/terraform/variables.tf declaring ``functions`` (key -> handler, sources), as the build reads it."""
    entries = "".join(
        f"    {key} = {{ handler = {json.dumps(handler)}, sources = {json.dumps(sources)} }}\n"
        for key, (handler, sources) in functions.items()
    )
    folder = root / "infra" / "terraform"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "variables.tf").write_text(
        'variable "functions" {\n  type = map(object({ handler = string, sources = list(string) }))\n'
        f"  default = {{\n{entries}  }}\n}}\n"
    )


def _backend(root: Path, *, git: bool = True) -> Paths:
    backend = root / "backend"
    (backend / "app" / "routes").mkdir(parents=True)
    (backend / "app" / "__init__.py").write_text("")
    (backend / "app" / "main.py").write_text("def handler(event, context):\n    return {'ok': True}\n")
    (backend / "app" / "routes" / "__init__.py").write_text("")
    (backend / "app" / "tests").mkdir()
    (backend / "app" / "tests" / "test_main.py").write_text("def test(): pass\n")
    (backend / "lambdas" / "cleanup").mkdir(parents=True)
    (backend / "lambdas" / "__init__.py").write_text("")
    (backend / "lambdas" / "cleanup" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (backend / "VERSION").write_text("1.2.3\n")
    _function_map(
        root, {"api": ("app.main.handler", ["app"]), "cleanup": ("lambdas.cleanup.handler.handler", ["lambdas"])}
    )
    (root / ".gitignore").write_text("__pycache__/\n.env\n*.pem\nnotes.local\n.build/\n")
    if git:
        _git(root, "init", "-q")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "init")
    return Paths(root=root)


def _names(zip_path: Path) -> list[str]:
    return zipfile.ZipFile(zip_path).namelist()


def test_function_zip_is_deterministic_and_reused(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "app" / "__pycache__").mkdir()
    (paths.backend / "app" / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"x")
    first = build_function(function_plan(_env(paths)))
    assert not first.reused
    art = first.artifact
    assert art.kind == "function" and art.identity == art.sha256
    assert art.path == tmp_path / ".build" / "functions" / f"{art.sha256}.zip"
    assert _names(art.path) == [
        "VERSION",
        "app/__init__.py",
        "app/__pycache__/__init__.cpython-312.pyc",
        "app/__pycache__/main.cpython-312.pyc",
        "app/main.py",
        "app/routes/__init__.py",
        "app/routes/__pycache__/__init__.cpython-312.pyc",
        "lambdas/__init__.py",
        "lambdas/__pycache__/__init__.cpython-312.pyc",
        "lambdas/cleanup/__pycache__/handler.cpython-312.pyc",
        "lambdas/cleanup/handler.py",
    ]
    # The developer's own (timestamped, any-Python) .pyc never ships; ours names the Lambda path.
    pyc = zipfile.ZipFile(art.path).read("app/__pycache__/main.cpython-312.pyc")
    assert int.from_bytes(pyc[4:8], "little") == 1 and runtime_co_filename(pyc) == "/var/task/app/main.py"
    assert not list((paths.backend / "app").rglob("*.cpython-312.pyc"))[1:]  # only the planted one
    # The commit is recorded beside the zip (its manifest), never in it: the zip's sha256 is its content's.
    info = load_manifest(art.manifest_path).inputs["version_info"]
    assert info == {
        "commit": _git(tmp_path, "rev-parse", "HEAD").strip(),
        "commit_time": "2024-01-01T00:00:00+00:00",
        "dirty": False,
    }
    second = build_function(function_plan(_env(paths)))
    assert second.reused and second.artifact.sha256 == art.sha256
    shutil.rmtree(tmp_path / ".build")
    third = build_function(function_plan(_env(paths)))
    assert not third.reused and third.artifact.sha256 == art.sha256
    assert load_manifest(third.artifact.manifest_path) == third.artifact
    assert [p.name for p in (tmp_path / ".build" / "functions").iterdir() if p.name.startswith(".")] == []


def test_dirty_tree_is_recorded(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    clean = build_function(function_plan(_env(paths))).artifact
    (paths.backend / "app" / "main.py").write_text("def handler(event, context):\n    return 2\n")
    assert version_info(paths)["dirty"] is True
    dirty = build_function(function_plan(_env(paths))).artifact
    assert dirty.sha256 != clean.sha256


def test_git_ignored_files_and_secrets_are_skipped_silently(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "app" / "notes.local").write_text("scratch")
    (paths.backend / "app" / ".env").write_text("DB_PASSWORD=hunter2\n")
    (paths.backend / "app" / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    names = _names(build_function(function_plan(_env(paths))).artifact.path)
    assert not any(n.endswith(("notes.local", ".env", ".pem")) for n in names)


@pytest.mark.parametrize("secret", ["app/id_rsa", "lambdas/cleanup/credentials", "app/.aws/config", "app/prod.key"])
def test_secret_file_not_ignored_is_an_error(tmp_path: Path, secret: str) -> None:
    paths = _backend(tmp_path)
    path = paths.backend / secret
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("secret\n")
    with pytest.raises(AuditError) as err:
        build_function(function_plan(_env(paths)))
    shown = "backend/app/.aws" if ".aws" in secret else f"backend/{secret}"
    assert shown in str(err.value)
    assert not (tmp_path / ".build" / "functions").exists() or not list((tmp_path / ".build" / "functions").iterdir())


def test_aws_key_in_code_is_an_error(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "app" / "settings.py").write_text(
        'KEY = "AKIAQWERTYUIOPASDFGH"\nSECRET = "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"\n'
    )
    with pytest.raises(AuditError, match=r"settings\.py"):
        build_function(function_plan(_env(paths)))


def test_symlink_outside_backend_is_an_error(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("elsewhere")
    (paths.backend / "app" / "linked.txt").symlink_to(outside)
    with pytest.raises(BuildError, match=r"linked\.txt points outside"):
        build_function(function_plan(_env(paths)))


def test_oversized_function_is_refused(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "app" / "blob.bin").write_bytes(os.urandom(FUNCTION_ZIPPED_LIMIT + 1024))
    with pytest.raises(AuditError, match="over the 1,000,000 limit"):
        build_function(function_plan(_env(paths)))
    assert not any((tmp_path / ".build" / "functions").iterdir())


def test_outside_git_commit_is_unknown(tmp_path: Path) -> None:
    paths = _backend(tmp_path, git=False)
    art = build_function(function_plan(_env(paths))).artifact
    assert "version_info.json" not in _names(art.path)
    assert load_manifest(art.manifest_path).inputs["version_info"] == {
        "commit": "unknown",
        "commit_time": None,
        "dirty": True,
    }


def test_function_plan_needs_the_sources(tmp_path: Path) -> None:
    (tmp_path / "backend").mkdir()
    _function_map(tmp_path, {"api": ("app.main.handler", ["app"])})
    with pytest.raises(BuildError, match="function api: source backend/app does not exist"):
        function_plan(_env(Paths(root=tmp_path)))


# ---------------------------------------------------------------------------
# Secrets: by name, through links, by content (detect-secrets), with a reviewed baseline

ACCESS_KEY = "AKIAZ7QW3XK5RT2LMN4P"
SECRET_KEY = "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"


def _refused(paths: Paths) -> str:
    with pytest.raises(AuditError) as err:
        build_function(function_plan(_env(paths)))
    out = paths.build / "functions"
    assert not out.exists() or not list(out.iterdir())  # nothing written
    return str(err.value)


def test_link_to_ignored_env_file_is_refused_naming_both(tmp_path: Path) -> None:
    """Seen: backend/app/settings.txt -> ../.env packaged the key pair under an innocent name."""
    paths = _backend(tmp_path)
    (paths.backend / ".env").write_text(f"AWS_ACCESS_KEY_ID={ACCESS_KEY}\nAWS_SECRET_ACCESS_KEY={SECRET_KEY}\n")
    (paths.backend / "app" / "settings.txt").symlink_to("../.env")
    message = _refused(paths)
    assert "backend/app/settings.txt is a link to backend/.env, which is git-ignored" in message


def test_link_to_secret_named_file_is_refused_naming_both(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "secrets.json").write_text('{"token": "x"}\n')
    (paths.backend / "app" / "data.json").symlink_to("../secrets.json")
    message = _refused(paths)
    assert "backend/app/data.json is a link to backend/secrets.json, which is named like a secret (secrets.*)" in (
        message
    )


def test_link_content_is_scanned(tmp_path: Path) -> None:
    """A link to an innocent-named, tracked file: its target's bytes are what the scanner reads."""
    paths = _backend(tmp_path)
    (paths.backend / "keys.txt").write_text(f"aws_secret_access_key = {SECRET_KEY}\n")
    (paths.backend / "app" / "readme.txt").symlink_to("../keys.txt")
    assert "backend/app/readme.txt:1 " in _refused(paths)


def test_key_value_aws_secret_is_refused(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "app" / "settings.txt").write_text(
        f"AWS_ACCESS_KEY_ID={ACCESS_KEY}\nAWS_SECRET_ACCESS_KEY={SECRET_KEY}\n"
    )
    assert "backend/app/settings.txt:" in _refused(paths)


def test_lone_secret_key_assignment_is_refused(tmp_path: Path) -> None:
    """No access-key id anywhere: the secret alone is enough."""
    paths = _backend(tmp_path)
    (paths.backend / "app" / "aws_conf.py").write_text(f'AWS_SECRET_ACCESS_KEY = "{SECRET_KEY}"\n')
    assert "backend/app/aws_conf.py:1 " in _refused(paths)


def test_tracked_settings_local_with_secret_is_refused(tmp_path: Path) -> None:
    """Committed to git, so nothing ignores it: the content scan must catch it."""
    paths = _backend(tmp_path)
    (paths.backend / "app" / "settings_local.py").write_text('SECRET_KEY = "k9#f2Lx!q8Zr@v3Tn7Wb$y1Mc"\nDEBUG = True\n')
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "settings")
    assert "backend/app/settings_local.py:1 Secret Keyword" in _refused(paths)


@pytest.mark.parametrize(
    "name",
    [
        ".env",
        ".env.production",
        "prod.env",
        ".netrc",
        ".pypirc",
        ".npmrc",
        "secrets.json",
        "secrets.yaml",
        "credentials.json",
        "id_rsa",
        "id_ed25519.pub",
    ],
)
def test_secret_names_are_refused(tmp_path: Path, name: str) -> None:
    paths = _backend(tmp_path)
    # Not ignored: a secret git would commit is an error, not something to skip.
    (tmp_path / ".gitignore").write_text("__pycache__/\n.build/\n")
    (paths.backend / "app" / name).write_text("value\n")
    assert f"backend/app/{name} is named like a secret" in _refused(paths)


def test_code_modules_named_credentials_are_scanned_not_refused(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    (paths.backend / "app" / "credentials.py").write_text("def load():\n    return None\n")
    assert "app/credentials.py" in _names(build_function(function_plan(_env(paths))).artifact.path)


def test_private_key_pem_is_refused_certificates_are_not(tmp_path: Path) -> None:
    from deploy.secret_scan import refused_name

    key = tmp_path / "server.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")
    assert refused_name("app/server.pem", key) == "is a PEM file that is not only certificates or public keys"
    assert refused_name("app/ca.pem", cert) is None


def test_reviewed_false_positive_in_the_baseline_is_allowed(tmp_path: Path) -> None:
    from deploy import secret_scan

    paths = _backend(tmp_path)
    fixture = paths.backend / "app" / "fixture.py"
    fixture.write_text(f'TEST_ONLY_SECRET = "{SECRET_KEY}"\n')
    [found, *_] = secret_scan.scan([("backend/app/fixture.py", fixture)])
    baseline = {"version": "1.5.0", "results": {"backend/app/fixture.py": [{"hashed_secret": found.hashed_secret}]}}
    (tmp_path / ".secrets.baseline").write_text(json.dumps(baseline))
    assert "app/fixture.py" in _names(build_function(function_plan(_env(paths))).artifact.path)
    # Marked as a real secret during the audit: refused again.
    baseline["results"]["backend/app/fixture.py"][0]["is_secret"] = True
    (tmp_path / ".secrets.baseline").write_text(json.dumps(baseline))
    shutil.rmtree(paths.build)
    assert "backend/app/fixture.py:1" in _refused(paths)


def test_repository_baseline_is_valid() -> None:
    from deploy import secret_scan

    root = Path(__file__).resolve().parents[2]
    assert isinstance(secret_scan.reviewed(root / secret_scan.BASELINE_NAME), frozenset)


# ---------------------------------------------------------------------------
# Function identity is content: commits and dependency changes do not move it

PAIR = Path(__file__).resolve().parent.parent / "fixtures" / "lockpair"


def test_a_commit_that_changes_no_source_keeps_the_function_sha(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    first = build_function(function_plan(_env(paths))).artifact
    before = _git(tmp_path, "rev-parse", "HEAD").strip()
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "docs only")
    after = _git(tmp_path, "rev-parse", "HEAD").strip()
    assert after != before
    second = build_function(function_plan(_env(paths)))
    assert second.reused and second.artifact.sha256 == first.sha256
    # Same bytes, but the manifest (what attach's description and the report read) names the new commit.
    assert load_manifest(second.artifact.manifest_path).inputs["version_info"]["commit"] == after


def test_a_dependency_only_change_moves_the_layer_and_not_the_function(tmp_path: Path) -> None:
    paths = _backend(tmp_path)
    _checkout(tmp_path)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "lock")
    layer_before = layer_plan(_env(paths), installer=FakeInstaller()).digest
    code_before = build_function(function_plan(_env(paths))).artifact.sha256
    for name in ("pyproject.toml", "poetry.lock", "requirements.txt"):
        shutil.copy(PAIR / "poetry" / name, paths.backend / name)
    _git(tmp_path, "commit", "-q", "-am", "add anyio")
    assert layer_plan(_env(paths), installer=FakeInstaller()).digest != layer_before
    assert build_function(function_plan(_env(paths))).artifact.sha256 == code_before


def test_the_report_names_the_commit_and_dirty_flag_of_the_function_code(tmp_path: Path) -> None:
    from deploy.report import markdown
    from deploy.run.layer_source import _artifact_json

    paths = _backend(tmp_path)
    head = _git(tmp_path, "rev-parse", "HEAD").strip()
    clean = _artifact_json(build_function(function_plan(_env(paths))).artifact)
    assert clean["commit"] == head and clean["dirty"] is False
    assert f"from commit `{head[:12]}`" in markdown({"env": "t", "function": clean})
    assert "(dirty)" not in markdown({"env": "t", "function": clean})
    (paths.backend / "app" / "main.py").write_text("def handler(event, context):\n    return 2\n")
    dirty = _artifact_json(build_function(function_plan(_env(paths))).artifact)
    assert dirty["dirty"] is True and f"from commit `{head[:12]}` (dirty)" in markdown({"env": "t", "function": dirty})


def test_a_clean_secret_scan_is_remembered_and_a_changed_file_scanned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function zip's content scan was most of a no-op build-function (and of `inv status`): a clean
    verdict is kept per file by the bytes it judged, so a code-only change scans only the changed file;
    a refusal never is kept, and other bytes are scanned again."""
    from deploy import secret_scan
    from deploy.errors import AuditError

    source = tmp_path / "handler.py"
    source.write_text("def handler(event, context):\n    return 1\n")
    other = tmp_path / "models.py"
    other.write_text("X = 1\n")
    files = [("backend/handler.py", source), ("backend/models.py", other)]
    baseline = tmp_path / ".secrets.baseline"
    scanned: list[str] = []
    real_scan = secret_scan.scan

    def counting(files: Any) -> list[Any]:
        files = list(files)
        scanned.extend(name for name, _ in files)
        return real_scan(files)

    monkeypatch.setattr(secret_scan, "scan", counting)
    secret_scan.check_content(files, baseline=baseline)
    keys = secret_scan._verdict_keys(files, baseline)
    markers = list(Path(os.environ["DEPLOY_CACHE_DIR"]).glob("secret-scan/*"))
    assert sorted(m.name for m in markers) == sorted(keys.values())
    assert scanned == ["backend/handler.py", "backend/models.py"]
    secret_scan.check_content(files, baseline=baseline)
    assert len(scanned) == 2  # both remembered: nothing scanned
    source.write_text('AWS_SECRET = "AKIAIOSFODNN7EXAMPLE"\n')  # the same name, other bytes
    assert secret_scan._verdict_keys(files, baseline)["backend/handler.py"] != keys["backend/handler.py"]
    with pytest.raises(AuditError, match="secret"):
        secret_scan.check_content(files, baseline=baseline)
    assert scanned[2:] == ["backend/handler.py"]  # only the changed file
    assert len(list(Path(os.environ["DEPLOY_CACHE_DIR"]).glob("secret-scan/*"))) == 2  # no verdict kept
    with pytest.raises(AuditError, match="secret"):
        secret_scan.check_content(files, baseline=baseline)  # refused again, not remembered

"""Layer and function builds: plans computed first (pure data), then one step that does I/O.

A layer is keyed by its inputs (``LayerIdentity``), so a second build with the same inputs
is a no-op. A function is keyed by its zip's sha256, which depends only on its files (sources,
``VERSION`` and the runtime's bytecode): the commit and the dirty flag stay out of the zip and go
on the manifest, the published version's description and the report, so a commit that changes
no function source publishes nothing and a dependency-only change moves only the layer.

What a later run may trust: a zip *with* a manifest whose sha256 matches. The zip is
renamed into place complete (``archive.write_zip``), the SBOM next, the manifest last, and
the install folder under ``.build/tmp/`` is always removed, so an interrupted build leaves
either nothing or an untrusted zip that the next build overwrites.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import os
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from rich.filesize import decimal

from deploy import archive, bytecode, content_cache, scratch, secret_scan
from deploy.artifact import Artifact, LayerAddress, PackageInfo, load_manifest
from deploy.config import EnvConfig, LayerOptions, Paths
from deploy.content_cache import ContentCache
from deploy.errors import AuditError, BuildError
from deploy.identity import LayerIdentity, layer_identity
from deploy.install import Installer, installer_for
from deploy.lock import Requirement, RequirementsFile, load_requirements_file
from deploy.sbom import layer_sbom, write_sbom

if TYPE_CHECKING:
    from deploy.terraform.functions import DeclaredFunction

Progress = Callable[[str], None]

#: Function code goes up as a direct upload when small; 1 MB keeps it "small code, big layer".
FUNCTION_ZIPPED_LIMIT = 1_000_000

_RUNTIME_BOTO_DISTS = ("boto3", "botocore", "s3transfer")
_TEST_DIRS = frozenset({"tests", "test"})


def _sizes(artifact: Artifact) -> str:
    """``40.4 MB zipped, 83.8 MB unzipped, 26 packages``: the one line that says a build is done."""
    text = f"{decimal(artifact.zipped_size)} zipped, {decimal(artifact.unzipped_size)} unzipped"
    return f"{text}, {len(artifact.packages)} packages" if artifact.kind == "layer" else text


def _for_target(plan: LayerPlan) -> int:
    """How many locked requirements apply to the target (``tzdata ; sys_platform == "win32"`` does not)."""
    return len(plan.identity.requirements)  # the identity holds exactly the pins that install there


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# ---------------------------------------------------------------------------
# Layer


@dataclass(frozen=True, kw_only=True)
class LayerPlan:
    env: str
    paths: Paths
    runtime: str
    python_version: str
    architecture: str
    glibc_floor: tuple[int, int]
    builder: str
    options: LayerOptions
    requirements_file: RequirementsFile
    identity: LayerIdentity
    installer: Installer = field(compare=False, repr=False)
    compiler: bytecode.Compiler | None = field(default=None, compare=False, repr=False)  # None: no .pyc
    # The .pyc files of earlier builds (deploy.content_cache); None: off.
    cache: ContentCache | None = field(default=None, compare=False, repr=False)

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self.requirements_file.requirements

    @property
    def digest(self) -> str:
        return self.identity.digest

    @property
    def address(self) -> LayerAddress:
        return LayerAddress.in_build(self.digest, self.paths.build)

    @property
    def zip_path(self) -> Path:
        return self.address.zip_path

    @property
    def manifest_path(self) -> Path:
        return self.address.manifest_path

    @property
    def sbom_path(self) -> Path:
        return self.address.sbom_path  # = Artifact.sbom_path of the built layer

    @property
    def s3_key(self) -> str:
        return self.address.zip_key


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    artifact: Artifact
    reused: bool
    warnings: tuple[str, ...] = ()
    fetched: bool = False  # read from the remote cache (another machine's build), not built here

    @property
    def source(self) -> str:
        """What the job summary says of the layer: built here, fetched from the cache, or already here."""
        if self.fetched:
            return "fetched from the remote cache"
        return "already built here" if self.reused else "built"


def layer_plan(
    env: EnvConfig,
    *,
    builder: str | None = None,
    architecture: str | None = None,
    installer: Installer | None = None,
    compiler: bytecode.Compiler | None = None,
) -> LayerPlan:
    """Read and sync-check the lock, ask the builder and the bytecode compiler their versions, derive the identity.

    An injected ``compiler`` is used as is; the default one goes through the content cache."""
    builder = builder or env.builder
    cache = content_cache.default_cache()
    architecture = architecture or env.architecture
    requirements = load_requirements_file(env.paths)
    if installer is None:
        installer = installer_for(builder, python_version=env.python_version, architecture=architecture)
    if not env.bytecode:
        compiler = None
    elif compiler is None:
        compiler = installer.compiler(env.python_version, cache=cache)
    identity = layer_identity(
        requirements.requirements,
        runtime=env.runtime,
        architecture=architecture,
        glibc_floor=env.glibc_floor,
        builder=installer.name,
        builder_version=installer.version(),
        options=env.layer,
        bytecode=f"cpython-{compiler.version()}" if compiler is not None else None,
    )
    return LayerPlan(
        env=env.name,
        paths=env.paths,
        runtime=env.runtime,
        python_version=env.python_version,
        architecture=architecture,
        glibc_floor=env.glibc_floor,
        builder=installer.name,
        options=env.layer,
        requirements_file=requirements,
        identity=identity,
        installer=installer,
        compiler=compiler,
        cache=cache,
    )


def existing_layer(plan: LayerPlan) -> Artifact | None:
    """The artifact of a previous build with this identity, if its zip still matches its manifest."""
    if not plan.manifest_path.is_file():
        return None
    try:
        artifact = load_manifest(plan.manifest_path)
        artifact.check(trust_stat=True)
    except BuildError:
        return None
    if artifact.kind != "layer" or artifact.identity != plan.digest:
        return None
    return artifact


def audit_fetched_layer(plan: LayerPlan, artifact: Artifact) -> None:
    """Audit a layer another machine built (the remote cache) as if it were built here.

    Checksums prove the bytes are what the bucket's manifest says, not that the manifest tells
    the truth: whoever can write the bucket can replace both. So the zip is extracted and goes
    through the same audit as a fresh build (wheel tags, ELF machine and glibc, secrets); its
    packages and real unzipped size must be the manifest's, and its SBOM must be the one this
    identity's packages and requirements give. Any difference is an AuditError naming it.
    """
    from deploy import audit

    work = Path(tempfile.mkdtemp(prefix=f"fetched-{plan.identity.short}-", dir=plan.zip_path.parent))
    try:
        archive.safe_extract(artifact.path, work, max_unzipped=audit.LAMBDA_UNZIPPED_LIMIT)
        packages = audit.audit_layer(
            work / "python",
            python_version=plan.python_version,
            architecture=plan.architecture,
            glibc_floor=plan.glibc_floor,
        )
        real_size = _tree_size(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = f"the cached layer {plan.identity.short}"
    if {(p.name, p.version) for p in packages} != {(p.name, p.version) for p in artifact.packages}:
        raise AuditError(f"{where} holds other packages than its manifest lists")
    if real_size != artifact.unzipped_size:
        raise AuditError(f"{where} unzips to {real_size} bytes, its manifest says {artifact.unzipped_size}")
    expected = plan.sbom_path.with_name(f".{plan.sbom_path.name}.expected")
    write_sbom(expected, layer_sbom(plan.identity, artifact.packages, plan.requirements))
    try:
        if not plan.sbom_path.is_file() or plan.sbom_path.read_bytes() != expected.read_bytes():
            raise AuditError(f"{where}'s SBOM is not the one its packages and requirements give")
    finally:
        expected.unlink(missing_ok=True)


def _requirements_for_install(plan: LayerPlan, dest: Path) -> Path:
    """Exactly the lines the identity hashed, so what is installed is what is named."""
    lines = [f"--index-url {url}" for url in plan.requirements_file.index_urls[:1]]
    lines += [f"--extra-index-url {url}" for url in plan.requirements_file.index_urls[1:]]
    lines += list(plan.identity.requirements)  # markers already evaluated for this target (deploy.identity)
    dest.write_text("\n".join(lines) + "\n")
    return dest


def _dist_infos(site: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for info in site.glob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[canonicalize_name(name)] = info
    return found


def _remove_distribution(site: Path, info: Path) -> None:
    """Delete every file a distribution's RECORD lists, then its now-empty folders."""
    record = info / "RECORD"
    folders: set[Path] = set()
    if record.is_file():
        for row in record.read_text(encoding="utf-8").splitlines():
            rel = row.split(",", 1)[0].strip()
            if not rel:
                continue
            path = (site / rel).resolve()
            if site.resolve() not in path.parents:
                continue  # RECORD entries like ../../bin/x point outside --target; not ours to delete
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            folders.update(p for p in path.parents if site.resolve() in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.rmdir()
    shutil.rmtree(info, ignore_errors=True)


def _version_of(info: Path) -> str:
    return info.name.removesuffix(".dist-info").rsplit("-", 1)[-1]


def post_process(site: Path, options: LayerOptions, *, runtime: str) -> list[str]:
    """Make the installed tree deterministic and apply the packaging options; return warnings.

    - ``bin/``: console scripts carry the build host's interpreter in their shebang and
      Lambda never runs them.
    - bytecode shipped inside wheels (``__pycache__``, legacy ``*.pyc``): compiled for some
      other Python, or timestamped; the build compiles its own afterwards (``compile_layer``).
    - ``exclude_runtime_boto``: boto3/botocore/s3transfer ship with the runtime; leaving
      them out saves ~25 MB but the function then runs whatever version AWS bundles.
    """
    warnings: list[str] = []
    shutil.rmtree(site / "bin", ignore_errors=True)
    # uv leaves its (empty) install lock file in the --target folder; it is not part of any package.
    (site / ".lock").unlink(missing_ok=True)
    _remove_bytecode(str(site))
    if options.exclude_runtime_boto:
        infos = _dist_infos(site)
        pinned_boto3 = infos.get("boto3")
        # AWS documents no fixed boto3 per runtime: it varies by region and changes without notice,
        # so a pinned boto3 that we drop is always worth a warning rather than a table lookup.
        if pinned_boto3 is not None:
            warnings.append(
                f"exclude_runtime_boto: boto3 is pinned at {_version_of(pinned_boto3)} but left out of the layer; "
                f"{runtime} functions will run the boto3 the runtime bundles (its version varies by region and time)"
            )
        for dist in _RUNTIME_BOTO_DISTS:
            if dist in infos:
                _remove_distribution(site, infos[dist])
    if options.strip_tests:
        for folder in sorted(site.rglob("*"), key=lambda p: len(p.parts)):
            if folder.name in _TEST_DIRS and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
    return warnings


def _remove_bytecode(folder: str, *, everything: bool = False) -> None:
    """Delete everything in each ``__pycache__`` folder and every ``.pyc``/``.pyo`` file under
    ``folder``: one walk (two ``rglob`` calls listed each of a layer's 1,100 folders four times).
    The ``__pycache__`` folders stay, empty, for the compile (deploy.scratch says why creating
    folders is worth avoiding). Links are neither followed nor deleted through: a link's target is
    not part of the tree."""
    with os.scandir(folder) as scan:
        entries = list(scan)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _remove_bytecode(entry.path, everything=everything or entry.name == "__pycache__")
        elif (everything or entry.name.endswith((".pyc", ".pyo"))) and not entry.is_symlink():
            os.unlink(entry.path)  # noqa: PTH108 - a str from scandir


def _record_rows(info: Path) -> list[list[str]]:
    record = info / "RECORD"
    if not record.is_file():
        return []
    return [row for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if row and row[0]]


def _site_files(site: Path) -> frozenset[str]:
    """Every file under ``site`` (links to files included, as ``Path.is_file`` counts them), as posix
    paths relative to it: one walk answers the thousands of RECORD rows a layer has."""
    found: set[str] = set()

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, f"{prefix}{entry.name}/")
                elif entry.is_file():
                    found.add(prefix + entry.name)

    walk(str(site), "")
    return frozenset(found)


def _pyc_rel(rel: str, cache_tag: str) -> str:
    folder, _, name = rel.rpartition("/")
    pyc = f"__pycache__/{name.removesuffix('.py')}.{cache_tag}.pyc"
    return f"{folder}/{pyc}" if folder else pyc


def rewrite_records(site: Path, *, cache_tag: str | None, present: frozenset[str] | None = None) -> None:
    """Make every RECORD list exactly the files the layer holds.

    Installers record what they wrote, including ``bin/`` scripts whose ``#!`` line holds the
    build machine's interpreter path (so their hashes differ per machine) and files that
    post-processing then dropped. A RECORD naming files that are not there would carry the
    build machine into the zip; one without the ``.pyc`` we add would hide them from tools
    reading it. ``.pyc`` rows have no hash, as the wheel spec allows and pip writes them.
    """
    site = Path(os.path.normpath(site))
    if present is None:  # ``present``: the caller knows every file under site (relative posix paths)
        present = _site_files(site)
    for info in sorted(site.glob("*.dist-info")):
        rows = _record_rows(info)
        if not rows:
            continue
        kept: list[list[str]] = []
        for row in rows:
            rel = row[0]
            norm = posixpath.normpath(rel)  # a row leaving site (../../bin/x) is never among ``present``
            if norm not in present:
                continue
            kept.append(row)
            if cache_tag and rel.endswith(".py") and _pyc_rel(norm, cache_tag) in present:
                kept.append([_pyc_rel(rel, cache_tag), "", ""])
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(kept)
        (info / "RECORD").write_text(out.getvalue(), encoding="utf-8")


def _owners(site: Path) -> dict[str, str]:
    """RECORD path -> "name version" of the distribution that installed it, for error messages."""
    owners: dict[str, str] = {}
    for info in sorted(site.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        for row in _record_rows(info):
            owners[row[0]] = f"{name} {version}"
    return owners


def compile_layer(site: Path, compiler: bytecode.Compiler, *, runtime: str, files: Sequence[str]) -> None:
    """Compile ``files`` (the layer's ``.py`` files relative to ``site``, sorted, from the build's
    walk) in place; a file the runtime cannot compile names its package."""
    failures = compiler.compile(site, files, out=site, prefix=f"{bytecode.LAYER_PREFIX}python/")
    if not failures:
        return
    owners = _owners(site)
    named = [
        f"{owners.get(f.file, f.file.split('/', 1)[0])}: python/{f.file}: {f.error}" for f in failures[:_MAX_NAMED]
    ]
    more = f" (and {len(failures) - _MAX_NAMED} more)" if len(failures) > _MAX_NAMED else ""
    raise BuildError(
        f"{len(failures)} file(s) of the layer do not compile under {runtime}{more}: " + "; ".join(named),
        hint=f"pin a version of that package that supports {runtime}, {bytecode.OFF_HINT}",
    )


_MAX_NAMED = 5


def _compile_then_deflate(
    plan: LayerPlan, site: Path, sources: Sequence[str], ahead: archive.Precompressor
) -> list[archive.Entry]:
    """Compile, then hand each .pyc to the deflate threads at once; returns their zip entries."""
    assert plan.compiler is not None
    compile_layer(site, plan.compiler, runtime=plan.runtime, files=sources)
    tag = bytecode.cache_tag(plan.python_version)
    pycs = [archive.file_entry(f"python/{rel}", site / rel) for rel in (_pyc_rel(src, tag) for src in sources)]
    ahead.submit(pycs)
    return pycs


def _final_entries(
    site: Path, installed: Sequence[archive.Entry], pycs: Sequence[archive.Entry]
) -> list[archive.Entry]:
    """What ``archive.collect(root, keep_bytecode=True)`` finds once the compile is done, without a
    second walk of 5,000 files: the tree is this build's own, and after the first walk only the
    compile (each .pyc, stat'ed as it was written) and the RECORD rewrite (stat'ed again here)
    changed it."""
    entries = [
        archive.file_entry(e.name, e.source) if e.name.endswith(".dist-info/RECORD") and e.source else e
        for e in installed
    ]
    return sorted([*entries, *pycs], key=lambda e: e.name)


# libdeflate's level 1 (deploy.archive): its fastest. For the real backend layer it deflates in
# half the time zlib's level 1 took (0.30 vs 0.61 CPU-seconds), into a zip 1 MB smaller (39.4 vs
# 40.4 MB); zlib's level 6 made members 2 MB smaller still for seven times the CPU. Build time is
# paid on every dependency change, the extra bytes once per upload, far below Lambda's 50 MB
# direct-upload line. Changing it changes the bytes, so it is covered by identity.FORMAT_VERSION.
LAYER_COMPRESSLEVEL = 1


def _tree_size(root: Path) -> int:
    """Bytes of the regular files under ``root`` (links not followed), one stat call each."""
    total = 0
    with os.scandir(root) as scan:
        for entry in scan:
            if entry.is_dir(follow_symlinks=False):
                total += _tree_size(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def build_layer(
    plan: LayerPlan,
    *,
    force: bool = False,
    progress: Progress | None = None,
    function_unzipped: int = 0,
) -> BuildResult:
    from deploy import audit

    if not force:
        found = existing_layer(plan)
        if found is not None:
            if not plan.sbom_path.is_file():
                write_sbom(plan.sbom_path, layer_sbom(plan.identity, found.packages, plan.requirements))
            # The function may have grown since the layer was built: the budget is checked again.
            audit.check_budget(
                layer_unzipped=found.unzipped_size, function_unzipped=function_unzipped, packages=found.packages
            )
            _say(progress, f"layer {plan.identity.short} already built: {_sizes(found)}")
            return BuildResult(artifact=found, reused=True)

    tmp_parent = plan.paths.build / "tmp"
    tmp_parent.mkdir(parents=True, exist_ok=True)
    for name in scratch.reap(tmp_parent):
        _say(progress, f"removed {tmp_parent / name}, left by a build that was killed")
    work = Path(tempfile.mkdtemp(prefix=f"{scratch.WORK_PREFIX}{plan.identity.short}-", dir=tmp_parent))
    held: int | None = None
    ahead: archive.Precompressor | None = None
    root = work / "root"
    reuse = plan.installer.merges_into_target
    try:
        held = scratch.hold(work)
        if reuse:
            scratch.claim(tmp_parent / scratch.SPARE, root)
        site = root / "python"  # Lambda puts /opt/python on sys.path; the zip holds python/...
        site.mkdir(parents=True, exist_ok=True)
        requirements = _requirements_for_install(plan, work / "requirements.txt")
        _say(
            progress,
            f"installing {_for_target(plan)} packages with {plan.builder} "
            f"for {plan.runtime} {plan.architecture} (glibc {plan.identity.glibc_floor})",
        )
        plan.installer.install(
            requirements,
            site,
            python_version=plan.python_version,
            architecture=plan.architecture,
            glibc_floor=plan.glibc_floor,
        )
        warnings = post_process(site, plan.options, runtime=plan.runtime)
        for warning in warnings:
            _say(progress, f"warning: {warning}")
        rewrite_records(site, cache_tag=None)  # before the audit: package sizes come from RECORD
        installed = archive.collect(root)
        # The compile (a subprocess on every core) and the audit (reads sources, skips __pycache__)
        # touch disjoint files, so they overlap: the compile's wait releases the GIL. The compile
        # starts first, as the longest of the three. From here on the installed files are final
        # (only RECORDs change again): deflating them starts now, beside the compile and the audit
        # (see archive.Precompressor), and each .pyc as soon as the compile has written them all.
        ahead = archive.Precompressor(LAYER_COMPRESSLEVEL)
        with ThreadPoolExecutor(max_workers=1) as pool:
            compiled = None
            if plan.compiler is not None:
                _say(progress, f"compiling bytecode ({plan.identity.bytecode})")
                sources = [e.name.removeprefix("python/") for e in installed if e.name.endswith(".py")]
                compiled = pool.submit(_compile_then_deflate, plan, site, sources, ahead)
            ahead.submit(installed)
            _say(progress, "auditing wheel tags, ELF files, sizes and secrets")
            try:
                packages = audit.audit_layer(
                    site,
                    python_version=plan.python_version,
                    architecture=plan.architecture,
                    glibc_floor=plan.glibc_floor,
                )
            finally:
                if compiled is not None:
                    compiled.exception()  # an audit failure still waits for the compile to stop
            entries = installed
            if compiled is not None:
                pycs = compiled.result()
                names = frozenset(e.name.removeprefix("python/") for e in [*installed, *pycs])
                rewrite_records(site, cache_tag=bytecode.cache_tag(plan.python_version), present=names)
                entries = _final_entries(site, installed, pycs)
        unzipped = sum(e.size or 0 for e in entries)  # what the zip will hold, from collect's stat calls
        audit.check_budget(layer_unzipped=unzipped, function_unzipped=function_unzipped, packages=packages)

        # A manifest from an earlier, broken build of this identity must not vouch for the new zip
        # while it is being written.
        plan.manifest_path.unlink(missing_ok=True)
        _say(progress, f"zipping {unzipped / 1e6:.1f} MB")
        result = archive.write_zip(
            entries, plan.zip_path, epoch=archive.ZIP_EPOCH, compresslevel=LAYER_COMPRESSLEVEL, ahead=ahead
        )
        artifact = Artifact(
            kind="layer",
            identity=plan.digest,
            path=plan.zip_path,
            sha256=result.sha256,
            zipped_size=result.zipped_size,
            unzipped_size=result.unzipped_size,
            runtime=plan.runtime,
            architecture=plan.architecture,
            packages=tuple(packages),
            inputs=plan.identity.to_json(),
        )
        write_sbom(plan.sbom_path, layer_sbom(plan.identity, packages, plan.requirements))
        artifact.write_manifest()
        if plan.cache is not None:
            content_cache.prune_daily(plan.cache)
        _say(progress, f"layer {plan.identity.short} built: {_sizes(artifact)}")
        return BuildResult(artifact=artifact, reused=False, warnings=tuple(warnings))
    finally:
        if ahead is not None:
            ahead.close()  # its threads stop reading before the tree goes
        if reuse:
            scratch.give_back(root, tmp_parent / scratch.SPARE)
        shutil.rmtree(work, ignore_errors=True)
        if held is not None:
            os.close(held)


def top_packages(artifact: Artifact, n: int = 10) -> list[tuple[PackageInfo, float]]:
    """The ``n`` largest packages and each one's share of Lambda's 250 MB unzipped budget."""
    from deploy.audit import LAMBDA_UNZIPPED_LIMIT

    ranked = sorted(artifact.packages, key=lambda p: (-p.size, p.name))[:n]
    return [(p, p.size / LAMBDA_UNZIPPED_LIMIT) for p in ranked]


# ---------------------------------------------------------------------------
# Function code

# Names that hold credentials (deploy.secret_scan.refused_name). Git-ignored ones are skipped
# silently; any other is an error, because a secret that is tracked (or about to be) is a leak to
# fix, not to hide.
# Not secrets, just not code that runs in Lambda.
_SKIP_DIRS = frozenset(
    {"tests", "test", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "venv", ".git"}
)
_SKIP_FILES = ("conftest.py", "test_*.py", "*_test.py", ".DS_Store", "*.py[cod]")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return proc if proc.returncode == 0 else None


def _git_ignored(paths: Paths) -> frozenset[str] | None:
    """Backend-relative paths git ignores (folders end with "/"); None outside a git checkout."""
    top = _git(paths.root, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    proc = _git(
        paths.backend, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z", "--", "."
    )
    if proc is None:
        return None
    return frozenset(p for p in proc.stdout.split("\0") if p)


def version_info(paths: Paths) -> dict[str, Any]:
    """Which commit the code came from: recorded beside the zip (manifest, version description,
    report), never in it, so the zip's sha256 is its content's.

    Outside a git checkout (a source tarball) the commit is ``"unknown"`` rather than an error,
    so the code can still be built; ``dirty`` is then true because nothing vouches for it.
    """
    head = _git(paths.root, "show", "-s", "--format=%H%n%cI", "HEAD")
    if head is None:
        return {"commit": "unknown", "commit_time": None, "dirty": True}
    commit, commit_time = head.stdout.split("\n")[:2]
    status = _git(paths.root, "status", "--porcelain", "--", str(paths.backend))
    dirty = status is None or bool(status.stdout.strip())
    return {"commit": commit.strip(), "commit_time": commit_time.strip(), "dirty": dirty}


@dataclass(frozen=True, kw_only=True)
class FunctionPlan:
    env: str
    paths: Paths
    runtime: str
    architecture: str
    version_info: Mapping[str, Any]
    ignored: frozenset[str] | None  # git-ignored backend paths; None when not in a git checkout
    compiler: bytecode.Compiler | None = field(default=None, compare=False, repr=False)  # None: no .pyc
    #: backend/-relative paths the zip holds: the union of every function's sources (Terraform's var.functions).
    sources: tuple[str, ...] = ()

    @property
    def out_dir(self) -> Path:
        return self.paths.build / "functions"


def function_plan(
    env: EnvConfig,
    *,
    compiler: bytecode.Compiler | None = None,
    functions: Sequence[DeclaredFunction] | None = None,
) -> FunctionPlan:
    """``functions``: the function map (default: Terraform's ``var.functions`` for ``env``)."""
    from deploy.terraform.functions import declared_functions

    backend = env.paths.backend
    declared = declared_functions(env) if functions is None else tuple(functions)
    sources = function_sources(backend, declared)
    if not (backend / "VERSION").exists():
        raise BuildError(f"{backend} lacks VERSION; cannot build the function code")
    return FunctionPlan(
        env=env.name,
        paths=env.paths,
        runtime=env.runtime,
        architecture=env.architecture,
        version_info=version_info(env.paths),
        ignored=_git_ignored(env.paths),
        compiler=(compiler or _default_compiler(env)) if env.bytecode else None,
        sources=sources,
    )


def _inside(path: str, source: str) -> bool:
    source = source.rstrip("/")
    return path == source or path.startswith(f"{source}/")


def _handler_module(backend: Path, module: str) -> str | None:
    """The backend-relative file Python would import for ``module`` (a module or a package)."""
    base = module.replace(".", "/")
    for rel in (f"{base}.py", f"{base}/__init__.py"):
        if (backend / rel).is_file():
            return rel
    return None


def function_sources(backend: Path, functions: Sequence[DeclaredFunction]) -> tuple[str, ...]:
    """The union of the functions' sources (a path inside another one dropped), after checking that
    every source exists inside backend/ and every handler's module is in its own function's sources:
    Lambda would otherwise fail the function's first import, after the deploy."""
    if not functions:
        raise BuildError("the function map declares no function; nothing to build")
    real_backend = backend.resolve()
    problems: list[str] = []
    wanted: set[str] = set()
    for fn in functions:
        for source in fn.sources:
            rel = source.strip("/")
            path = (backend / rel).resolve()
            if not rel or Path(source).is_absolute() or not path.is_relative_to(real_backend):
                problems.append(f"function {fn.key}: source {source!r} is outside backend/")
            elif not (backend / rel).exists():
                problems.append(f"function {fn.key}: source backend/{rel} does not exist")
            else:
                wanted.add(rel)
        module = _handler_module(backend, fn.module)
        if module is None:
            looked = fn.module.replace(".", "/")
            problems.append(
                f"function {fn.key}: handler {fn.handler}: module {fn.module} not found "
                f"(no backend/{looked}.py or backend/{looked}/__init__.py)"
            )
        elif not any(_inside(module.removesuffix(".py"), s.strip("/").removesuffix(".py")) for s in fn.sources):
            problems.append(
                f"function {fn.key}: handler {fn.handler} is in backend/{module}, outside its sources "
                f"({', '.join(fn.sources)})"
            )
    if problems:
        raise BuildError("; ".join(problems), hint="fix the function map (var.functions in infra/terraform)")
    return tuple(s for s in sorted(wanted) if not any(o != s and _inside(s, o) for o in wanted))


def _default_compiler(env: EnvConfig) -> bytecode.Compiler:
    return bytecode.LocalCompiler(env.python_version, cache=content_cache.default_cache())


def _ignored(rel: str, ignored: frozenset[str] | None) -> bool:
    if not ignored:
        return False
    if rel in ignored or f"{rel}/" in ignored:
        return True
    return any(rel.startswith(d) for d in ignored if d.endswith("/"))


def _linked_secrets(backend: Path, entries: Sequence[archive.Entry], ignored: frozenset[str] | None) -> list[str]:
    """Entries reached through a link whose target is git-ignored or named like a secret.

    The name checks above see the link's own name (``app/settings.txt``); Lambda gets the target's
    bytes (``../.env``), so the target is what must pass.
    """
    real_backend = backend.resolve()
    out = []
    for entry in entries:
        if entry.source is None or entry.source == backend / entry.name:
            continue  # not through a link
        target = Path(os.path.realpath(entry.source))
        rel = target.relative_to(real_backend).as_posix()  # collect() refused anything outside backend/
        why = "is git-ignored" if _ignored(rel, ignored) else secret_scan.refused_name(rel, target)
        if why is not None:
            out.append(f"backend/{entry.name} is a link to backend/{rel}, which {why}")
    return out


def _function_bytecode(plan: FunctionPlan, entries: list[archive.Entry], out: Path) -> list[archive.Entry]:
    """Compile the zip's .py files into ``out`` (never into the developer's tree) as /var/task paths."""
    assert plan.compiler is not None
    sources = [e.name for e in entries if e.name.endswith(".py")]
    failures = plan.compiler.compile(plan.paths.backend, sources, out=out, prefix=bytecode.FUNCTION_PREFIX)
    if failures:
        named = "; ".join(f"backend/{f.file}: {f.error}" for f in failures)
        raise BuildError(f"function code does not compile under {plan.runtime}: {named}")
    tag = bytecode.cache_tag(plan.runtime.removeprefix("python"))
    return [archive.Entry(name=_pyc_rel(rel, tag), source=out / _pyc_rel(rel, tag)) for rel in sources]


def function_entries(plan: FunctionPlan, *, pyc_dir: Path | None = None) -> list[archive.Entry]:
    """The files of the function zip; refuses secrets that git would not ignore.

    With a compiler in the plan, ``pyc_dir`` receives the compiled bytecode and the entries include it.
    """
    backend = plan.paths.backend
    secrets: list[str] = []

    def exclude_under(top: str) -> Callable[[str], bool]:
        def exclude(rel: str) -> bool:
            full = f"{top}/{rel}"
            if _ignored(full, plan.ignored):
                return True
            name = rel.rsplit("/", 1)[-1]
            why = secret_scan.refused_name(rel, backend / full)
            if why is not None:
                secrets.append(f"backend/{full} {why}")
                return True
            return name in _SKIP_DIRS or any(fnmatch.fnmatchcase(name, pat) for pat in _SKIP_FILES)

        return exclude

    entries: list[archive.Entry] = []
    for top in plan.sources:
        if (backend / top).is_dir():
            entries += archive.collect(
                backend / top, prefix=f"{top}/", exclude=exclude_under(top), allowed_root=backend
            )
            continue
        # A file source: the same checks a walk would make of it.
        parent, _, name = top.rpartition("/")
        if not exclude_under(parent or ".")(name):
            real = Path(os.path.realpath(backend / top))
            if not real.is_relative_to(backend.resolve()):
                raise BuildError(f"backend/{top} is a link to {real}, outside backend/")
            entries.append(archive.file_entry(top, backend / top))
    secrets += _linked_secrets(backend, entries, plan.ignored)
    if secrets:
        raise AuditError(
            f"refusing to package secret-looking files: {', '.join(sorted(secrets))}",
            hint="delete them, or add them to .gitignore if they must stay on this machine",
        )
    version = backend / "VERSION"
    if version.is_symlink():
        raise BuildError(f"{version} is a symlink; VERSION must be a regular file")
    entries.append(archive.Entry(name="VERSION", source=version))
    # Content scan of exactly the bytes that go into the zip, links resolved (entry.source).
    secret_scan.check_content(
        [(f"backend/{e.name}", e.source) for e in entries if e.source is not None],
        baseline=plan.paths.root / secret_scan.BASELINE_NAME,
    )
    if plan.compiler is not None:
        if pyc_dir is None:
            raise BuildError("function bytecode needs a folder to compile into")
        entries += _function_bytecode(plan, entries, pyc_dir)
    return entries


def build_function(plan: FunctionPlan, *, progress: Progress | None = None) -> BuildResult:
    """Zip the function code; identical inputs give an identical zip, so a rebuild is a no-op."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="function-pyc-", dir=plan.out_dir) as pyc_dir:
        return _build_function(plan, function_entries(plan, pyc_dir=Path(pyc_dir)), progress)


def _build_function(plan: FunctionPlan, entries: list[archive.Entry], progress: Progress | None) -> BuildResult:
    fd, pending_name = tempfile.mkstemp(dir=plan.out_dir, prefix=".function-", suffix=".zip")
    os.close(fd)
    pending = Path(pending_name)
    try:
        result = archive.write_zip(entries, pending, epoch=archive.ZIP_EPOCH)
        if result.zipped_size >= FUNCTION_ZIPPED_LIMIT:
            raise AuditError(
                f"function code is {result.zipped_size:,} bytes zipped, over the {FUNCTION_ZIPPED_LIMIT:,} limit",
                hint="dependencies belong in the layer (backend/pyproject.toml), not in the functions' sources",
            )
        dest = plan.out_dir / f"{result.sha256}.zip"
        artifact = Artifact(
            kind="function",
            identity=result.sha256,
            path=dest,
            sha256=result.sha256,
            zipped_size=result.zipped_size,
            unzipped_size=result.unzipped_size,
            runtime=plan.runtime,
            architecture=plan.architecture,
            inputs={"version_info": dict(plan.version_info), "files": result.entries},
        )
        reused = False
        with contextlib.suppress(BuildError):
            previous = load_manifest(artifact.manifest_path)
            previous.check()
            reused = previous.sha256 == artifact.sha256
        if reused:
            if previous.inputs != artifact.inputs:
                # Same bytes from another commit: the manifest names the commit this build saw.
                artifact.write_manifest()
            _say(progress, f"function code {result.sha256[:12]} already built: {_sizes(artifact)}")
            return BuildResult(artifact=artifact, reused=True)
        pending.replace(dest)
        artifact.write_manifest()
        _say(progress, f"function code {result.sha256[:12]} built: {_sizes(artifact)}")
        return BuildResult(artifact=artifact, reused=False)
    finally:
        pending.unlink(missing_ok=True)


__all__ = [
    "FUNCTION_ZIPPED_LIMIT",
    "BuildResult",
    "FunctionPlan",
    "LayerPlan",
    "build_function",
    "build_layer",
    "existing_layer",
    "function_entries",
    "function_plan",
    "function_sources",
    "layer_plan",
    "post_process",
    "top_packages",
    "version_info",
]

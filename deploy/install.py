"""Installers behind one Protocol: put the locked wheels for a Lambda target into a folder.

Every installer installs wheels only (``--only-binary :all:``), hash-checked, without
resolving (``--no-deps``: requirements.txt already is the closure), for the target's
platform rather than the host's. A package without a wheel for the target is an error:
compiling it here would build it for this machine's glibc and CPU, not Lambda's.

uv is the default because it cross-installs for any manylinux floor with no Docker and
is fast with a warm cache; pip does the same with explicit platform tags; docker runs pip
inside the Lambda base image for the rare case where that is wanted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from deploy import bytecode
from deploy.content_cache import ContentCache
from deploy.errors import BuildError
from deploy.lambda_facts import LAMBDA_OS

# uv's --python-platform offers manylinux2014 (2.17) and then 2.28, 2.31..2.40: no 2.26.
_UV_MANYLINUX_MINORS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}
_DOCKER_PLATFORM = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
_TAIL_LINES = 15

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class Installer(Protocol):
    name: str
    # True when installing into a folder that already has (empty) package folders fills them, as
    # uv does: the build may then start from the last build's folders (deploy.scratch). pip
    # --target skips a top-level folder that exists, with only a warning.
    merges_into_target: bool

    def version(self) -> str: ...

    def install(
        self,
        requirements: Path,
        target: Path,
        *,
        python_version: str,
        architecture: str,
        glibc_floor: tuple[int, int],
    ) -> None: ...

    def compiler(self, python_version: str, *, cache: ContentCache | None) -> bytecode.Compiler:
        """Who compiles the layer's bytecode: the Python the installed files will run with."""
        ...


class Builder(Protocol):
    """An installer class as the registry holds it: made for one Lambda target."""

    @property
    def name(self) -> str: ...

    def for_target(self, *, python_version: str, architecture: str) -> Installer: ...


class CompilesHere:
    """For installers that put files on this machine: the runtime's Python here compiles them
    (through the content cache, so an unchanged file is compiled once)."""

    def compiler(self, python_version: str, *, cache: ContentCache | None) -> bytecode.Compiler:
        return bytecode.LocalCompiler(python_version, cache=cache)


def machine(architecture: str) -> str:
    """Lambda says arm64, wheel tags say aarch64."""
    try:
        return _ARCH[architecture]
    except KeyError:
        raise BuildError(f"unknown architecture {architecture!r}; expected one of {', '.join(_ARCH)}") from None


def uv_platform(architecture: str, glibc_floor: tuple[int, int]) -> str:
    """The highest uv target whose glibc is <= the runtime's: AL2 (2.26) → manylinux2014, AL2023 → 2_34."""
    major, minor = glibc_floor
    fitting = [m for m in _UV_MANYLINUX_MINORS if major == 2 and m <= minor]
    if not fitting:
        raise BuildError(f"no uv platform fits glibc {major}.{minor}; the oldest uv offers is 2.17")
    best = max(fitting)
    arch = machine(architecture)
    return f"{arch}-manylinux2014" if best == 17 else f"{arch}-manylinux_2_{best}"


def manylinux_platforms(architecture: str, glibc_floor: tuple[int, int]) -> list[str]:
    """Every manylinux platform tag the runtime accepts, newest first: the one list the installer
    asks for and the audit checks against.

    pip expands only the legacy ``manylinux2014`` alias to older tags; a ``manylinux_2_34``
    platform matches only wheels tagged exactly 2_34, so the whole range is spelled out.
    manylinux1/2010 (glibc 2.5/2.12) were only defined for x86 (PEP 513/571); aarch64 starts at 2.17.
    """
    arch = machine(architecture)
    major, minor = glibc_floor
    if major != 2 or minor < 17:
        raise BuildError(f"glibc {major}.{minor} is older than manylinux2014 (2.17); no wheels target it")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux_2_{m}_{arch}" for m in range(16, 11, -1)]
        tags.append(f"manylinux2010_{arch}")
        tags += [f"manylinux_2_{m}_{arch}" for m in range(11, 4, -1)]
        tags.append(f"manylinux1_{arch}")
    return tags


def _tail(text: str, n: int = _TAIL_LINES) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:])


#: The OS each runtime's glibc floor means (see lambda_facts.RUNTIMES).
_LAMBDA_OS = LAMBDA_OS


def describe_target(
    python_version: str, architecture: str, glibc_floor: tuple[int, int], *, platform_tag: str | None = None
) -> str:
    """The target in the user's words: ``manylinux2014 = glibc 2.17 for python3.11 on Amazon Linux 2 (x86_64)``.

    ``platform_tag`` is the wheel platform actually asked for (uv's nearest, which can be older
    than the runtime's floor); without it, the runtime's own floor.
    """
    lambda_os = _LAMBDA_OS.get(glibc_floor, f"glibc {glibc_floor[0]}.{glibc_floor[1]}")
    tag = platform_tag or f"manylinux_{glibc_floor[0]}_{glibc_floor[1]}"
    glibc = ".".join(map(str, _tag_glibc(tag)))
    return f"{tag} = glibc {glibc} for python{python_version} on {lambda_os} ({architecture})"


def _tag_glibc(tag: str) -> tuple[int, int]:
    if tag.startswith("manylinux2014"):
        return (2, 17)
    major, minor = tag.removeprefix("manylinux_").split("_")[:2]
    return int(major), int(minor)


def _no_wheel_advice(
    tool: str, pkg: str, python_version: str, glibc_floor: tuple[int, int], platform_tag: str | None
) -> str:
    steps = [f"pin a version of {pkg} that publishes a wheel for this target (see its files on PyPI)"]
    if python_version in ("3.9", "3.10", "3.11"):
        steps.append("move the function to python3.12 or later (Amazon Linux 2023, manylinux_2_34)")
    else:
        steps.append("change the runtime")
    if platform_tag is not None and _tag_glibc(platform_tag) < glibc_floor:
        floor = ".".join(map(str, glibc_floor))
        steps.append(
            f"or build with --builder pip or docker, which accept wheels up to the runtime's glibc {floor} "
            f"(uv's nearest target is {platform_tag})"
        )
    elif "docker" not in tool:
        steps.append("or build with --builder docker, which installs inside the Lambda image itself")
    return "; ".join(steps)


# (pattern, message) pairs with named groups ``pkg`` (and ``version`` where the text has it).
# Order matters: most specific first.
_NO_WHEEL = "no wheel"
_BAD_HASH = "{pkg}: downloaded file does not match the hash in requirements.txt"
_PKG = r"(?P<pkg>[A-Za-z0-9_.\[\]-]+?)"

_UV_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    # uv 0.13 names the requirement with its marker: ``pyyaml{python_full_version < '3.14'}==5.4.1``.
    (re.compile(rf"Because {_PKG}(?:\{{[^}}]*\}})?==(?P<version>\S+) has no usable wheels"), _NO_WHEEL),
    (re.compile(r"Hash mismatch for `(?P<pkg>[^=`]+)=="), _BAD_HASH),
    (
        re.compile(rf"there is no version of {_PKG}(?:\{{[^}}]*\}})?=="),
        "{pkg}: no matching distribution on the index for the pinned version",
    ),
    (re.compile(r"Failed to (?:download|fetch) `(?P<pkg>[^=`]+)"), "{pkg}: download failed"),
)

_PIP_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            rf"Could not find a version that satisfies the requirement {_PKG}==(?P<version>\S+) \(from versions: none\)"
        ),
        _NO_WHEEL,
    ),
    (
        re.compile(rf"No matching distribution found for {_PKG}=="),
        "{pkg}: no matching distribution for the target ({target})",
    ),
    (re.compile(r"^\s*(?P<pkg>[A-Za-z0-9_.-]+)==\S+ from \S+.*:\s*\n\s*Expected", re.M), _BAD_HASH),
)


def _explain(
    tool: str,
    stderr: str,
    patterns: Sequence[tuple[re.Pattern[str], str]],
    *,
    python_version: str,
    architecture: str,
    glibc_floor: tuple[int, int],
    platform_tag: str | None = None,
) -> BuildError:
    target = describe_target(python_version, architecture, glibc_floor, platform_tag=platform_tag)
    # uv wraps its sentences to the terminal width (COLUMNS), anywhere between two words.
    flat = " ".join(stderr.split())
    for pattern, template in patterns:
        match = pattern.search(stderr) or pattern.search(flat)
        if not match:
            continue
        pkg = match.group("pkg")
        if template is _NO_WHEEL:
            version = match.groupdict().get("version")
            named = f"{pkg} {version}" if version else pkg
            return BuildError(
                f"{tool} install failed: {named} has no wheel for the target ({target}); "
                f"refusing to compile it for the build machine\n{_tail(stderr)}",
                hint=_no_wheel_advice(tool, pkg, python_version, glibc_floor, platform_tag),
            )
        return BuildError(f"{tool} install failed: {template.format(pkg=pkg, target=target)}\n{_tail(stderr)}")
    return BuildError(f"{tool} install failed for {target}:\n{_tail(stderr)}")


def _run(runner: Runner, argv: Sequence[str], tool: str) -> subprocess.CompletedProcess[str]:
    try:
        return runner(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError(f"{tool} is not installed: {argv[0]} was not found") from None


def _tool_version(runner: Runner, argv: Sequence[str], tool: str) -> str:
    """The second word of ``<tool> --version`` (``uv 0.13.9 (...)``, ``pip 24.2 from ...``)."""
    proc = _run(runner, argv, tool)
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) < 2:
        raise BuildError(f"`{tool} --version` failed: {_tail(proc.stderr or proc.stdout)}")
    return parts[1]


def find_uv() -> str:
    """The uv installed alongside this Python (the ``uv`` PyPI package) first, then PATH."""
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise BuildError("uv is not installed", hint="pip install uv, or use --builder pip")


def explain_uv(stderr: str, *, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> BuildError:
    """uv's error text → a BuildError naming the package, version and target, and what to do."""
    tag = uv_platform(architecture, glibc_floor).split("-", 1)[1]
    return _explain(
        "uv",
        stderr,
        _UV_ERRORS,
        python_version=python_version,
        architecture=architecture,
        glibc_floor=glibc_floor,
        platform_tag=tag,
    )


def explain_pip(stderr: str, *, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> BuildError:
    """pip's error text (stderr, then stdout) → a BuildError naming the package and target, and what to do."""
    return _explain(
        "pip", stderr, _PIP_ERRORS, python_version=python_version, architecture=architecture, glibc_floor=glibc_floor
    )


class _CommandInstaller(CompilesHere, ABC):
    """uv and pip: one command on this machine installs the pinned wheels for the target; a failure is
    explained from the tool's own words. Subclasses say which command and how it runs."""

    def argv(
        self,
        requirements: Path,
        target: Path,
        *,
        python_version: str,
        architecture: str,
        glibc_floor: tuple[int, int],
    ) -> list[str]:
        return [*self._options(target, python_version, architecture, glibc_floor), "-r", str(requirements)]

    def install(
        self,
        requirements: Path,
        target: Path,
        *,
        python_version: str,
        architecture: str,
        glibc_floor: tuple[int, int],
    ) -> None:
        argv = self.argv(
            requirements, target, python_version=python_version, architecture=architecture, glibc_floor=glibc_floor
        )
        failure = self._run_install(argv, target)
        if failure is not None:
            raise self.explain(
                failure, python_version=python_version, architecture=architecture, glibc_floor=glibc_floor
            )

    @abstractmethod
    def _options(self, target: Path, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> list[str]:
        """The command up to its requirements file."""

    @abstractmethod
    def _run_install(self, argv: list[str], target: Path) -> str | None:
        """Run the install: ``None`` when it worked, else the tool's words for ``explain``."""

    @staticmethod
    @abstractmethod
    def explain(stderr: str, *, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> BuildError:
        """The failure in the tool's words, turned into a BuildError that names the package at fault."""


class UvInstaller(_CommandInstaller):
    name = "uv"
    merges_into_target = True

    @classmethod
    def for_target(cls, *, python_version: str, architecture: str) -> Installer:
        return cls()  # one uv installs for any target (--python-platform)

    def __init__(self, *, uv_bin: str | None = None, runner: Runner = subprocess.run) -> None:
        self._uv_bin = uv_bin
        self._runner = runner

    @property
    def uv_bin(self) -> str:
        if self._uv_bin is None:
            self._uv_bin = find_uv()
        return self._uv_bin

    def version(self) -> str:
        """``uv 0.13.9 (x86_64-unknown-linux-gnu)`` → ``0.13.9``: the host triple must not reach the identity."""
        return _tool_version(self._runner, [self.uv_bin, "--version"], "uv")

    def _options(self, target: Path, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> list[str]:
        return [
            self.uv_bin,
            "pip",
            "install",
            "--no-config",  # a developer's uv.toml must not change what the layer contains
            "--target",
            str(target),
            "--python-platform",
            uv_platform(architecture, glibc_floor),
            "--python-version",
            python_version,
            "--only-binary",
            ":all:",
            "--require-hashes",
            "--no-deps",
        ]

    def _run_install(self, argv: list[str], target: Path) -> str | None:
        env = {k: v for k, v in os.environ.items() if k != "UV_COMPILE_BYTECODE"}
        try:
            # From uv's cache alone first: when every pinned wheel is there (any rebuild on this
            # machine), uv needs no round trip to the index (0.11 s against 0.27 s for this project's
            # layer). The hashes are checked the same way. Anything missing, or any other failure,
            # and the install runs online into an emptied target; its words are the ones explained.
            offline = self._runner([*argv, "--offline"], capture_output=True, text=True, check=False, env=env)
            if offline.returncode == 0:
                return None
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True, exist_ok=True)
            proc = self._runner(argv, capture_output=True, text=True, check=False, env=env)
        except FileNotFoundError:
            raise BuildError(f"uv is not installed: {argv[0]} was not found") from None
        return proc.stderr if proc.returncode != 0 else None

    explain = staticmethod(explain_uv)


class PipInstaller(_CommandInstaller):
    name = "pip"
    merges_into_target = False

    @classmethod
    def for_target(cls, *, python_version: str, architecture: str) -> Installer:
        return cls()  # this Python's pip, told the target's platform tags

    def __init__(self, *, python: str = sys.executable, runner: Runner = subprocess.run) -> None:
        self.python = python
        self._runner = runner

    def version(self) -> str:
        return _tool_version(self._runner, [self.python, "-m", "pip", "--version"], "pip")

    def _options(self, target: Path, python_version: str, architecture: str, glibc_floor: tuple[int, int]) -> list[str]:
        argv = [
            self.python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--isolated",  # ignore pip.conf / PIP_* so every machine installs the same way
            "--target",
            str(target),
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--require-hashes",
            "--no-deps",
            "--no-compile",
        ]
        for tag in manylinux_platforms(architecture, glibc_floor):
            argv += ["--platform", tag]
        return argv

    def _run_install(self, argv: list[str], target: Path) -> str | None:
        proc = _run(self._runner, argv, "pip")
        return proc.stderr + proc.stdout if proc.returncode != 0 else None

    explain = staticmethod(explain_pip)


def lambda_image(python_version: str, architecture: str) -> str:
    """AWS's own base image: the exact OS and Python the function runs on."""
    return f"public.ecr.aws/lambda/python:{python_version}-{architecture}"


class DockerInstaller:
    """pip inside the Lambda base image. Needs a Docker engine; uv needs none."""

    name = "docker"
    merges_into_target = False  # pip --target, in the image

    def __init__(
        self,
        *,
        client_factory: Callable[[], Any] | None = None,
        python_version: str = "3.12",
        architecture: str = "x86_64",
    ) -> None:
        self._factory = client_factory
        self._client: Any = None
        self.python_version = python_version
        self.architecture = architecture

    @classmethod
    def for_target(cls, *, python_version: str, architecture: str) -> Installer:
        return cls(python_version=python_version, architecture=architecture)  # the image is per target

    def compiler(self, python_version: str, *, cache: ContentCache | None) -> bytecode.Compiler:
        """The image's own python3, same OS and Python as Lambda; the compile runs as the container's
        user, so no shared cache folder there."""
        return bytecode.DockerCompiler(self)

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        factory = self._factory
        if factory is None:
            try:
                import docker
            except ImportError:
                # An extra since the deploy job stopped installing it: most builds never need it.
                raise BuildError(
                    "the Docker builder needs the docker package, which is not installed",
                    hint="pip install -e '.[docker]', or use --builder uv (the default), which needs no Docker",
                ) from None
            factory = docker.from_env
        try:
            client = factory()
            client.ping()
        except Exception as exc:  # noqa: BLE001 - the SDK raises DockerException, requests errors or OSError
            reason = str(exc) or type(exc).__name__
            raise BuildError(
                f"Docker builder needs a running Docker engine: {reason}; "
                "use --builder uv (the default) which cross-installs without Docker"
            ) from None
        self._client = client
        return client

    def _image(self, python_version: str, architecture: str) -> Any:
        client = self._connect()
        name = lambda_image(python_version, architecture)
        with contextlib.suppress(Exception):  # docker.errors.ImageNotFound; the SDK is imported lazily
            return client.images.get(name)
        repo, _, tag = name.rpartition(":")
        try:
            return client.images.pull(repo, tag=tag, platform=_DOCKER_PLATFORM[architecture])
        except Exception as exc:  # noqa: BLE001
            raise BuildError(f"cannot pull {name}: {exc}") from None

    def version(self) -> str:
        """The image digest: it pins the OS, Python and pip the layer was installed with."""
        image = self._image(self.python_version, self.architecture)
        digests = list(getattr(image, "attrs", {}).get("RepoDigests") or [])
        return str(digests[0] if digests else image.id)

    def install(
        self,
        requirements: Path,
        target: Path,
        *,
        python_version: str,
        architecture: str,
        glibc_floor: tuple[int, int],
    ) -> None:
        # The base image *is* the runtime's OS; pip picks its tags natively.
        target.mkdir(parents=True, exist_ok=True)
        status, text = self._run(
            python_version,
            architecture,
            entrypoint=["python3", "-m", "pip"],
            command=[
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--target",
                "/out",
                "-r",
                "/req/requirements.txt",
                "--require-hashes",
                "--only-binary",
                ":all:",
                "--no-deps",
                "--no-compile",
            ],
            volumes={
                str(requirements.resolve()): {"bind": "/req/requirements.txt", "mode": "ro"},
                str(target.resolve()): {"bind": "/out", "mode": "rw"},
            },
            environment={"HOME": "/tmp", "PIP_CACHE_DIR": "/tmp/pip-cache"},  # noqa: S108 - inside the container
        )
        if status != 0:
            raise _explain(
                f"pip (docker, {lambda_image(python_version, architecture)})",
                text,
                _PIP_ERRORS,
                python_version=python_version,
                architecture=architecture,
                glibc_floor=glibc_floor,
            )

    def run_python(self, command: list[str], *, volumes: dict[str, dict[str, str]], environment: dict[str, str]) -> str:
        """Run the image's own python3 (bytecode is compiled there); its stdout, or a BuildError."""
        status, text = self._run(
            self.python_version,
            self.architecture,
            entrypoint=["python3"],
            command=command,
            volumes=volumes,
            environment=environment,
            stdout_only=True,
        )
        if status != 0:
            image = lambda_image(self.python_version, self.architecture)
            raise BuildError(f"python3 in {image} failed (exit {status}): {_tail(text)}")
        return text

    def _run(
        self,
        python_version: str,
        architecture: str,
        *,
        entrypoint: list[str],
        command: list[str],
        volumes: dict[str, dict[str, str]],
        environment: dict[str, str],
        stdout_only: bool = False,
    ) -> tuple[int, str]:
        image = self._image(python_version, architecture)
        client = self._connect()
        user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
        container = client.containers.run(
            image,
            entrypoint=entrypoint,
            command=command,
            volumes=volumes,
            environment=environment,
            platform=_DOCKER_PLATFORM[architecture],
            user=user,
            detach=True,
        )
        try:
            result = container.wait()
            status = int(result.get("StatusCode", 1)) if isinstance(result, dict) else int(result)
            logs = container.logs(stdout=True, stderr=not stdout_only or status != 0)
            return status, logs.decode("utf-8", "replace") if isinstance(logs, bytes) else str(logs)
        finally:
            container.remove(force=True)


#: The one list of builders: invoke.yaml's ``builder``, ``--builder`` and every message naming the
#: choices read it. Registering a class here is all a new builder needs (it declares its compiler).
INSTALLERS: dict[str, Builder] = {builder.name: builder for builder in (UvInstaller, PipInstaller, DockerInstaller)}


def builder_names() -> str:
    """``uv, pip, docker``: the registry's names, for choice lists and messages."""
    return ", ".join(INSTALLERS)


def _builder(name: str) -> Any:
    try:
        return INSTALLERS[name]
    except KeyError:
        raise BuildError(f"unknown builder {name!r}; choose one of {builder_names()}") from None


def get_installer(name: str, **kwargs: Any) -> Installer:
    """The builder ``name`` built with its own options (tests pass fakes' runners and paths)."""
    installer: Installer = _builder(name)(**kwargs)
    return installer


def installer_for(name: str, *, python_version: str, architecture: str) -> Installer:
    """The builder ``name`` made for one Lambda target."""
    builder: Builder = _builder(name)
    return builder.for_target(python_version=python_version, architecture=architecture)

"""Installers: argv for each target, error mapping, and the Docker builder against a fake engine."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from deploy.config import ROOT
from deploy.errors import BuildError
from deploy.install import (
    INSTALLERS,
    DockerInstaller,
    PipInstaller,
    UvInstaller,
    explain_uv,
    get_installer,
    lambda_image,
    manylinux_platforms,
    uv_platform,
)

REQ = Path("/r/requirements.txt")
OUT = Path("/t/python")


class FakeRunner:
    """Records argv and answers like a finished process."""

    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.result = (returncode, stdout, stderr)

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        self.kwargs.append(kwargs)
        code, out, err = self.result
        return subprocess.CompletedProcess(list(argv), code, out, err)


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize(
    ("arch", "floor", "expected"),
    [
        ("x86_64", (2, 34), "x86_64-manylinux_2_34"),
        ("arm64", (2, 34), "aarch64-manylinux_2_34"),
        ("x86_64", (2, 26), "x86_64-manylinux2014"),  # uv has no 2_26: Amazon Linux 2 gets 2014
        ("arm64", (2, 26), "aarch64-manylinux2014"),
        ("x86_64", (2, 30), "x86_64-manylinux_2_28"),
    ],
)
def test_uv_platform(arch: str, floor: tuple[int, int], expected: str) -> None:
    assert uv_platform(arch, floor) == expected


def test_uv_platform_rejects_unknown_arch_and_old_glibc() -> None:
    with pytest.raises(BuildError, match="unknown architecture 'ppc64le'"):
        uv_platform("ppc64le", (2, 34))
    with pytest.raises(BuildError, match=r"no uv platform fits glibc 2\.12"):
        uv_platform("x86_64", (2, 12))


def test_uv_argv_python312_x86() -> None:
    uv = UvInstaller(uv_bin="/bin/uv", runner=FakeRunner())
    argv = uv.argv(REQ, OUT, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34))
    assert argv[:3] == ["/bin/uv", "pip", "install"]
    assert _value(argv, "--python-platform") == "x86_64-manylinux_2_34"
    assert _value(argv, "--python-version") == "3.12"
    assert _value(argv, "--target") == str(OUT)
    assert _value(argv, "--only-binary") == ":all:"
    assert {"--require-hashes", "--no-deps", "--no-config"} <= set(argv)
    assert argv[-2:] == ["-r", str(REQ)]


def test_uv_argv_python311_arm64_uses_manylinux2014() -> None:
    uv = UvInstaller(uv_bin="/bin/uv", runner=FakeRunner())
    argv = uv.argv(REQ, OUT, python_version="3.11", architecture="arm64", glibc_floor=(2, 26))
    assert _value(argv, "--python-platform") == "aarch64-manylinux2014"
    assert _value(argv, "--python-version") == "3.11"


def test_uv_version_drops_the_host_triple() -> None:
    runner = FakeRunner(stdout="uv 0.13.9 (x86_64-unknown-linux-gnu)\n")
    assert UvInstaller(uv_bin="/bin/uv", runner=runner).version() == "0.13.9"
    assert runner.calls == [["/bin/uv", "--version"]]


def test_uv_install_drops_compile_bytecode_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_COMPILE_BYTECODE", "1")
    runner = FakeRunner()
    UvInstaller(uv_bin="/bin/uv", runner=runner).install(
        REQ, OUT, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34)
    )
    assert "UV_COMPILE_BYTECODE" not in runner.kwargs[0]["env"]


@pytest.mark.parametrize(
    ("stderr", "needle"),
    [
        (
            "error: Failed to download `six==1.17.0`\n  cause: Hash mismatch for `six==1.17.0`\n",
            "six: downloaded file does not match the hash",
        ),
        (
            "  cause: Because there is no version of six==99.0 and you require six==99.0, we can conclude",
            "six: no matching distribution",
        ),
        (
            "error: something unexpected happened\n",
            "uv install failed for manylinux_2_34 = glibc 2.34 for python3.12 on Amazon Linux 2023 (x86_64)",
        ),
    ],
)
def test_uv_errors_name_the_package(stderr: str, needle: str, tmp_path: Path) -> None:  # hand-written
    uv = UvInstaller(uv_bin="/bin/uv", runner=FakeRunner(returncode=1, stderr=stderr))
    with pytest.raises(BuildError) as err:
        uv.install(REQ, tmp_path / "python", python_version="3.12", architecture="x86_64", glibc_floor=(2, 34))
    assert needle in str(err.value)
    assert stderr.strip().splitlines()[-1].strip() in str(err.value)  # the tail of uv's own words


UV_FIXTURES = Path(__file__).parent.parent / "fixtures" / "uv"
RECORDED = json.loads((UV_FIXTURES / "no_wheel_pyyaml_py311.json").read_text())
RECORDED_WRAPPED = json.loads((UV_FIXTURES / "no_wheel_pyyaml_py311_wrapped.json").read_text())
PYYAML_MESSAGE = (
    "uv install failed: pyyaml 5.4.1 has no wheel for the target "
    "(manylinux2014 = glibc 2.17 for python3.11 on Amazon Linux 2 (x86_64)); "
    "refusing to compile it for the build machine"
)


@pytest.mark.parametrize("recorded", [RECORDED, RECORDED_WRAPPED], ids=["one-line", "wrapped-at-80-columns"])
def test_uv_no_wheel_error_from_the_recorded_uv_output(recorded: dict[str, Any], tmp_path: Path) -> None:
    """uv's own words (tests/fixtures/uv/record.py ran the pinned uv): package, version, target and what to do."""
    if recorded["columns"]:
        assert "has no usable\n" in recorded["stderr"]  # wrapped mid-requirement, as in CI logs
    runner = FakeRunner(returncode=recorded["returncode"], stderr=recorded["stderr"])
    uv = UvInstaller(uv_bin="/bin/uv", runner=runner)
    with pytest.raises(BuildError) as err:
        uv.install(REQ, tmp_path / "python", python_version="3.11", architecture="x86_64", glibc_floor=(2, 26))
    assert err.value.message.startswith(PYYAML_MESSAGE)
    assert "has no usable" in err.value.message  # uv's own text follows
    assert err.value.hint == (
        "pin a version of pyyaml that publishes a wheel for this target (see its files on PyPI); "
        "move the function to python3.12 or later (Amazon Linux 2023, manylinux_2_34); "
        "or build with --builder pip or docker, which accept wheels up to the runtime's glibc 2.26 "
        "(uv's nearest target is manylinux2014)"
    )


def test_the_recording_comes_from_the_pinned_uv() -> None:
    """Upgrading uv without re-recording (python tests/fixtures/uv/record.py) fails here."""
    assert RECORDED["uv_version"] == UvInstaller().version()
    pinned = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"uv==' in line)
    assert pinned.strip().strip('",') == f"uv=={RECORDED['uv_version']}"


def test_missing_uv_binary() -> None:
    uv = UvInstaller(uv_bin="/nonexistent/uv")
    with pytest.raises(BuildError, match="uv is not installed"):
        uv.install(REQ, OUT, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34))


def test_manylinux_platforms_span_the_floor_down_to_manylinux1() -> None:
    tags = manylinux_platforms("x86_64", (2, 34))
    assert tags[0] == "manylinux_2_34_x86_64"
    assert "manylinux_2_28_x86_64" in tags
    assert "manylinux_2_35_x86_64" not in tags
    assert tags[-1] == "manylinux1_x86_64"
    arm = manylinux_platforms("arm64", (2, 26))
    assert arm[0] == "manylinux_2_26_aarch64"
    assert arm[-1] == "manylinux2014_aarch64"
    assert not any("manylinux1" in t or "2010" in t for t in arm)


def test_pip_argv() -> None:
    pip = PipInstaller(python="/py", runner=FakeRunner())
    argv = pip.argv(REQ, OUT, python_version="3.11", architecture="x86_64", glibc_floor=(2, 26))
    assert argv[:4] == ["/py", "-m", "pip", "install"]
    platforms = [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"]
    assert platforms[0] == "manylinux_2_26_x86_64"
    assert "manylinux2014_x86_64" in platforms
    assert _value(argv, "--implementation") == "cp"
    assert _value(argv, "--python-version") == "3.11"
    assert {"--only-binary=:all:", "--require-hashes", "--no-deps", "--no-compile", "--isolated"} <= set(argv)
    assert argv[-2:] == ["-r", str(REQ)]


def test_pip_version_and_errors() -> None:
    runner = FakeRunner(stdout="pip 24.2 from /x/pip (python 3.11)\n")
    assert PipInstaller(python="/py", runner=runner).version() == "24.2"
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement docopt==0.6.2 (from versions: none)\n"
        "ERROR: No matching distribution found for docopt==0.6.2\n"
    )
    pip = PipInstaller(python="/py", runner=FakeRunner(returncode=1, stderr=stderr))
    with pytest.raises(BuildError, match=r"docopt 0\.6\.2 has no wheel for the target"):
        pip.install(REQ, OUT, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34))
    mismatch = (
        "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
        "    six==1.17.0 from https://files.example/six-1.17.0-py2.py3-none-any.whl (from -r r.txt (line 1)):\n"
        "        Expected sha256 aaaa\n             Got        bbbb\n"
    )
    pip = PipInstaller(python="/py", runner=FakeRunner(returncode=1, stderr=mismatch))
    with pytest.raises(BuildError, match="six: downloaded file does not match the hash"):
        pip.install(REQ, OUT, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34))


def test_registry() -> None:
    assert set(INSTALLERS) == {"uv", "pip", "docker"}
    assert get_installer("pip", python="/py").name == "pip"
    with pytest.raises(BuildError, match="unknown builder 'conda'"):
        get_installer("conda")


def test_every_list_of_builders_is_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A builder registered once is a choice everywhere: installer lookup, --builder, invoke.yaml."""
    from deploy.config import load_env
    from deploy.context import check_flags
    from deploy.errors import ConfigError

    monkeypatch.setitem(INSTALLERS, "conda", PipInstaller)
    with pytest.raises(BuildError) as err:
        get_installer("mamba")
    assert err.value.message == "unknown builder 'mamba'; choose one of uv, pip, docker, conda"
    with pytest.raises(ConfigError, match="--builder 'mamba' is not one of uv, pip, docker, conda"):
        check_flags(None, "mamba")
    check_flags(None, "conda")
    local = {"region": "us-east-1", "builder": "conda"}
    assert load_env({"environments": {"local": local}}, "local").builder == "conda"
    with pytest.raises(ConfigError, match=r"'mamba' is not a builder; choose one of uv, pip, docker, conda"):
        load_env({"environments": {"local": {**local, "builder": "mamba"}}}, "local")


# ---------------------------------------------------------------------------
# Docker, against a fake engine implementing the SDK surface we use


class FakeImage:
    def __init__(self, name: str) -> None:
        self.id = "sha256:" + "1" * 64
        self.tags = [name]
        self.attrs = {"RepoDigests": [f"public.ecr.aws/lambda/python@sha256:{'2' * 64}"]}


class FakeContainer:
    def __init__(self, status: int, logs: bytes, stderr: bytes = b"") -> None:
        self.status = status
        self._logs = logs
        self._stderr = stderr
        self.removed = False

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.status}

    def logs(self, stdout: bool = True, stderr: bool = True) -> bytes:
        return (self._logs if stdout else b"") + (self._stderr if stderr else b"")

    def remove(self, force: bool = False) -> None:
        self.removed = force


class FakeImages:
    def __init__(self, present: bool) -> None:
        self.present = present
        self.pulled: list[tuple[str, str, str]] = []

    def get(self, name: str) -> FakeImage:
        if not self.present:
            raise LookupError(name)  # stands in for docker.errors.ImageNotFound
        return FakeImage(name)

    def pull(self, repo: str, tag: str, platform: str) -> FakeImage:
        self.pulled.append((repo, tag, platform))
        return FakeImage(f"{repo}:{tag}")


class FakeContainers:
    """``python`` answers runs of the image's python3 (entrypoint ``["python3"]``): (status, stdout, stderr)."""

    def __init__(
        self, status: int, logs: bytes, python: Callable[[dict[str, Any]], tuple[int, bytes, bytes]] | None = None
    ) -> None:
        self.status, self.logs = status, logs
        self.python = python
        self.runs: list[dict[str, Any]] = []
        self.last: FakeContainer | None = None

    def run(self, image: FakeImage, **kwargs: Any) -> FakeContainer:
        self.runs.append({"image": image, **kwargs})
        if kwargs["entrypoint"] == ["python3"] and self.python is not None:
            self.last = FakeContainer(*self.python(kwargs))
        else:
            self.last = FakeContainer(self.status, self.logs)
        return self.last


class FakeEngine:
    def __init__(
        self,
        *,
        status: int = 0,
        logs: bytes = b"",
        present: bool = False,
        reachable: bool = True,
        python: Callable[[dict[str, Any]], tuple[int, bytes, bytes]] | None = None,
    ) -> None:
        self.reachable = reachable
        self.images = FakeImages(present)
        self.containers = FakeContainers(status, logs, python)

    def ping(self) -> bool:
        if not self.reachable:
            raise ConnectionError("Cannot connect to the Docker daemon")
        return True


def test_lambda_image_tags() -> None:
    assert lambda_image("3.12", "x86_64") == "public.ecr.aws/lambda/python:3.12-x86_64"
    assert lambda_image("3.11", "arm64") == "public.ecr.aws/lambda/python:3.11-arm64"


def test_docker_install_runs_pip_in_the_lambda_image(tmp_path: Path) -> None:
    engine = FakeEngine()
    req = tmp_path / "requirements.txt"
    req.write_text("six==1.17.0 --hash=sha256:" + "a" * 64 + "\n")
    target = tmp_path / "python"
    docker = DockerInstaller(client_factory=lambda: engine, python_version="3.12", architecture="arm64")
    assert docker.version() == f"public.ecr.aws/lambda/python@sha256:{'2' * 64}"
    assert engine.images.pulled == [("public.ecr.aws/lambda/python", "3.12-arm64", "linux/arm64")]
    docker.install(req, target, python_version="3.12", architecture="arm64", glibc_floor=(2, 34))
    run = engine.containers.runs[0]
    assert run["platform"] == "linux/arm64"
    assert run["entrypoint"] == ["python3", "-m", "pip"]
    assert {"--require-hashes", "--no-deps", ":all:", "/out", "/req/requirements.txt"} <= set(run["command"])
    assert run["volumes"][str(req.resolve())] == {"bind": "/req/requirements.txt", "mode": "ro"}
    assert run["volumes"][str(target.resolve())] == {"bind": "/out", "mode": "rw"}
    assert engine.containers.last is not None and engine.containers.last.removed


def test_docker_failure_reports_the_log_tail_and_removes_the_container(tmp_path: Path) -> None:
    logs = (
        b"Collecting docopt==0.6.2\n"
        b"ERROR: Could not find a version that satisfies the requirement docopt==0.6.2 (from versions: none)\n"
    )
    engine = FakeEngine(status=1, logs=logs, present=True)
    docker = DockerInstaller(client_factory=lambda: engine)
    req = tmp_path / "requirements.txt"
    req.write_text("")
    with pytest.raises(BuildError) as err:
        docker.install(req, tmp_path / "out", python_version="3.12", architecture="x86_64", glibc_floor=(2, 34))
    assert "docopt 0.6.2 has no wheel for the target" in str(err.value)
    assert "from versions: none" in str(err.value)
    assert "--builder docker" not in str(err.value)  # it is the docker builder already
    assert engine.containers.last is not None and engine.containers.last.removed
    assert engine.images.pulled == []  # present locally: no pull


def test_docker_unreachable_engine_is_a_clear_error() -> None:
    docker = DockerInstaller(client_factory=lambda: FakeEngine(reachable=False))
    with pytest.raises(BuildError) as err:
        docker.version()
    message = str(err.value)
    assert message.startswith("Docker builder needs a running Docker engine: Cannot connect to the Docker daemon")
    assert "use --builder uv (the default)" in message


def test_real_sdk_without_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(BuildError, match=r"Docker builder needs a running Docker engine: .*use --builder uv"):
        DockerInstaller().version()


# ---------------------------------------------------------------------------
# Real uv against PyPI

# docopt 0.6.2 only ever shipped an sdist; this is its real sha256 on PyPI.
DOCOPT_SDIST = "sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"


@pytest.mark.network
def test_real_uv_refuses_an_sdist_only_package(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(f"docopt==0.6.2 \\\n    --hash={DOCOPT_SDIST}\n")
    with pytest.raises(BuildError) as err:
        UvInstaller().install(
            req, tmp_path / "python", python_version="3.12", architecture="x86_64", glibc_floor=(2, 34)
        )
    assert (
        "docopt 0.6.2 has no wheel for the target (manylinux_2_34 = glibc 2.34 for python3.12 on Amazon Linux 2023"
        in str(err.value)
    )
    assert not any((tmp_path / "python").glob("docopt*"))


@pytest.mark.network
def test_live_pinned_uv_still_prints_what_the_parser_understands(tmp_path: Path) -> None:
    """The recorded fixture's case, run now: an upgrade of uv that changes its words fails here."""
    from tests.fixtures.uv.record import record

    for columns in (None, 80):
        live = record("no_wheel_pyyaml_py311", columns=columns)
        assert live["uv_version"] == RECORDED["uv_version"]
        error = explain_uv(str(live["stderr"]), python_version="3.11", architecture="x86_64", glibc_floor=(2, 26))
        assert error.message.startswith(PYYAML_MESSAGE)


def test_docker_builder_without_the_docker_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker is the `docker` extra; the default uv builder never needs it."""
    import sys

    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` raises ImportError
    with pytest.raises(BuildError) as err:
        DockerInstaller().version()
    assert err.value.message == "the Docker builder needs the docker package, which is not installed"
    assert "pip install -e '.[docker]'" in (err.value.hint or "")


def test_uv_installs_from_its_cache_first_and_online_only_when_that_fails(tmp_path: Path) -> None:
    """A rebuild needs no index round trip; a wheel missing from the cache (the offline run fails) is
    fetched by a second, online run into an emptied target, and only that run's words are explained."""
    target = tmp_path / "python"
    target.mkdir()
    ok = FakeRunner()
    UvInstaller(uv_bin="/bin/uv", runner=ok).install(
        REQ, target, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34)
    )
    assert [call[-1] for call in ok.calls] == ["--offline"]

    class OfflineMisses(FakeRunner):
        def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
            if "--offline" in argv:
                (target / "half-installed").write_text("x")
                return subprocess.CompletedProcess(argv, 1, "", "error: six was not found in the cache\n")
            return super().__call__(argv, **kwargs)

    online = OfflineMisses(returncode=1, stderr="error: something unexpected happened\n")
    with pytest.raises(BuildError) as err:
        UvInstaller(uv_bin="/bin/uv", runner=online).install(
            REQ, target, python_version="3.12", architecture="x86_64", glibc_floor=(2, 34)
        )
    assert len(online.calls) == 1 and "--offline" not in online.calls[0]  # the online run (recorded by super)
    assert "something unexpected happened" in str(err.value) and "not found in the cache" not in str(err.value)
    assert not (target / "half-installed").exists() and target.is_dir()

"""How the suite runs: in parallel (pytest-xdist, as the nox test sessions run it), one botocore loader.

A crashed worker must fail the run at once rather than be replaced (a crash inside a module
fixture would otherwise crash every replacement in turn), and the tests sharing a module-scoped
fixture run on one worker, so the fixture is made once per run (tests/conftest.py).
"""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
# Generous, only so that a hang fails this test instead of hanging the session; no timing is asserted.
HANG_GUARD = 300


def _project_addopts() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return [opt for opt in config["addopts"] if opt.startswith("--max-worker-restart")]


def test_the_project_disables_worker_restarts() -> None:
    assert _project_addopts() == ["--max-worker-restart=0"]


def test_a_crashed_worker_fails_the_run_instead_of_being_replaced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="""
        import os

        def test_dies():
            os._exit(3)  # what a segfault in a C extension looks like to xdist

        def test_fine():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", *_project_addopts(), timeout=HANG_GUARD)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*crashed and worker restarting disabled*"])
    result.stdout.fnmatch_lines(["*test_crash.py::test_dies*"])
    assert "replacing crashed worker" not in result.stdout.str()


def test_a_module_fixture_is_made_once_per_run_under_loadgroup(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    made = tmp_path / "made"
    pytester.makeconftest("from tests.conftest import pytest_xdist_make_scheduler  # noqa: F401\n")
    pytester.makepyfile(
        test_shared=f"""
        import os
        import pytest

        @pytest.fixture(scope="module")
        def built():
            with open({str(made)!r}, "a") as out:
                out.write(os.environ.get("PYTEST_XDIST_WORKER", "none") + "\\n")

        @pytest.mark.parametrize("n", range(8))
        def test_uses_it(built, n):
            pass

        @pytest.mark.parametrize("n", range(8))
        def test_does_not(n):
            pass
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", timeout=HANG_GUARD
    )
    result.assert_outcomes(passed=16)
    assert len(made.read_text().splitlines()) == 1


def test_botocore_sessions_in_a_test_process_share_one_loader() -> None:
    """tests/conftest.py's ``_one_botocore_loader``: the second session parses no model again, and
    boto3's own data folder, which every ``boto3.Session`` appends, is searched once."""
    import boto3

    first = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    second = boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    boto3_data = str(Path(boto3.__file__).parent / "data")
    assert loader.search_paths.count(boto3_data) == 1
    assert second.client("lambda").meta.service_model.service_name == "lambda"


def test_the_costliest_modules_start_first(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``XDIST_SECONDS`` orders the queue (longest first); unmarked modules keep xdist's order after them."""
    pytester.makeconftest("from tests.conftest import pytest_xdist_make_scheduler  # noqa: F401\n")
    order = pytester.path / "order"
    body = f"""
        import pytest
        XDIST_SECONDS = {{seconds}}

        @pytest.fixture(scope="module")
        def shared():
            return None

        def test_one(shared, request):
            with open({str(order)!r}, "a") as out:
                out.write(request.module.__name__ + "\\n")
        """
    pytester.makepyfile(
        test_a_short=body.format(seconds=5),
        test_b_long=body.format(seconds=300),
        test_c_middle=body.format(seconds=60),
        test_d_unmarked=body.replace("XDIST_SECONDS = {seconds}", ""),
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "1", "--dist", "loadgroup", "-p", "no:cacheprovider", timeout=HANG_GUARD
    )
    result.assert_outcomes(passed=4)
    assert order.read_text().split() == ["test_b_long", "test_c_middle", "test_a_short", "test_d_unmarked"]


def test_a_run_started_with_ctrl_c_ignored_handles_it_in_workers_and_their_children(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script's background job (``nox &``) inherits SIGINT ignored; the Ctrl-C tests need Python's handler."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("from tests.conftest import pytest_configure  # noqa: F401\n")
    pytester.makepyfile(
        test_sigint="""
        import signal, subprocess, sys

        def test_handled_here_and_in_a_child():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            child = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
            assert subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout == "True\\n"
        """
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what the background shell hands over
    try:
        result = pytester.runpytest_subprocess("-p", "xdist", "-n", "1", timeout=HANG_GUARD)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()

"""Cold-start measurement: fresh-process imports on extracted artifacts, and -X importtime parsing."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from deploy import coldstart, runtime_python
from deploy.artifact import Artifact, sha256_file
from deploy.config import EnvConfig, FunctionTarget, VerifySettings
from deploy.errors import VerifyError

# The sandbox's forced variables come from the settings (invoke.yaml verify.sandbox_env), by key or "*".
ENV = EnvConfig(
    name="test", region="us-east-1", verify=VerifySettings(sandbox_env={"*": {"DATABASE_URL": "sqlite:///{tmp}/x.db"}})
)
FUNCTIONS = (
    FunctionTarget(key="api", name="t-api", handler="app.main.handler"),
    FunctionTarget(key="worker", name="t-worker", handler="lambdas.worker.handler.handler"),
)


def _python() -> Path:
    found = runtime_python.find("3.12")
    if found is None:
        pytest.fail("these tests need python3.12, the runtime this project targets")
    return found.path


def _zip(path: Path, files: dict[str, str], kind: str) -> Artifact:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    sha = sha256_file(path)
    return Artifact(
        kind=kind,  # type: ignore[arg-type]
        identity=sha,
        path=path,
        sha256=sha,
        zipped_size=path.stat().st_size,
        unzipped_size=0,
        runtime="python3.12",
        architecture="x86_64",
    )


def _tree(tmp_path: Path) -> coldstart.Tree:
    tmp_path.mkdir(parents=True, exist_ok=True)
    layer = _zip(
        tmp_path / "layer.zip",
        {
            "python/heavy/__init__.py": "from heavy import core\nimport helper\n",
            "python/heavy/core.py": "import json\nVALUE = json.dumps([1])\n",
            "python/helper.py": "import heavy.core\n",
        },
        "layer",
    )
    function = _zip(
        tmp_path / "function.zip",
        {
            "app/__init__.py": "",
            "app/main.py": "import os\nimport heavy\nassert os.environ['DATABASE_URL'].startswith('sqlite')\n",
            "lambdas/__init__.py": "",
            "lambdas/worker/__init__.py": "",
            "lambdas/worker/handler.py": "import helper\ndef handler(event, context):\n    return 1\n",
        },
        "function",
    )
    return coldstart.extract(layer, function, tmp_path / "tree")


def test_handlers_come_from_the_function_map() -> None:
    # Whatever the map names, nothing guessed from the layout: a handler in any module is measured.
    assert coldstart.handlers(FUNCTIONS) == {"api": "app.main", "worker": "lambdas.worker.handler"}
    other = FunctionTarget(key="notifier", name="t-notifier", handler="notify.send")
    assert coldstart.handlers([other]) == {"notifier": "notify"}


def test_import_times_runs_each_handler_in_fresh_processes_per_variant(tmp_path: Path) -> None:
    trees = {"a": _tree(tmp_path / "a"), "b": _tree(tmp_path / "b")}
    times = coldstart.import_times(ENV, _python(), trees, FUNCTIONS, runs=2, scratch=tmp_path / "scratch")
    assert set(times) == {"a", "b"}
    for variant in times.values():
        assert set(variant) == {"api", "worker"}
        assert all(len(runs) == 2 and all(t > 0 for t in runs) for runs in variant.values())
    # -B: a measurement never leaves bytecode behind for the next one to reuse.
    assert not list((tmp_path / "a" / "tree").rglob("*.pyc"))


def test_a_handler_that_fails_to_import_is_named(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tree.task_root / "lambdas" / "worker" / "handler.py").write_text("import missing_dependency\n")
    with pytest.raises(VerifyError, match=r"(?s)importing lambdas\.worker\.handler failed.*missing_dependency"):
        coldstart.import_once(ENV, _python(), tree, "worker", "lambdas.worker.handler", tmp_path / "s")


JAILED = """
import glob, os
# The verify sandbox's environment, built by the same function (not a copy of it).
assert os.environ["AWS_LAMBDA_FUNCTION_NAME"] == "api" and os.environ["_HANDLER"] == "app.main.handler"
assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true" and "AWS_ACCESS_KEY_ID" not in os.environ
# ... and its jail: no host sockets folder, no other process.
assert not os.path.exists("/run") and not os.path.exists("/var"), os.listdir("/")
assert len(glob.glob("/proc/[0-9]*")) <= 2, glob.glob("/proc/[0-9]*")
"""


def test_imports_run_in_the_verify_sandbox(tmp_path: Path) -> None:
    """The bench and layer-report time imports through the sandbox's one entry point: same variables, same jail."""
    tree = _tree(tmp_path)
    (tree.task_root / "app" / "main.py").write_text(JAILED)
    assert coldstart.import_once(ENV, _python(), tree, "api", "app.main", tmp_path / "s") > 0
    assert {p.name for p in coldstart.import_profile(ENV, _python(), tree, "api", "app.main", tmp_path / "p")} >= {
        "app"
    }


def test_importtime_counts_each_package_once_from_its_entry_points(tmp_path: Path) -> None:
    """Real ``-X importtime`` output: heavy is entered once (helper's re-import of heavy.core is inside it)."""
    tree = _tree(tmp_path)
    profile = coldstart.import_profile(ENV, _python(), tree, "api", "app.main", tmp_path / "s")
    by_name = {p.name: p for p in profile}
    assert {"heavy", "helper", "app", "json"} <= set(by_name)
    assert by_name["app"].cumulative_s >= by_name["heavy"].cumulative_s >= by_name["helper"].cumulative_s
    assert profile[0].cumulative_s == max(p.cumulative_s for p in profile)
    assert coldstart.package_size(tree, "heavy")[1] == "layer"
    assert coldstart.package_size(tree, "app")[1] == "code"
    assert coldstart.package_size(tree, "json") == (0, "runtime")


def test_parse_importtime_entry_points() -> None:
    python = _python()
    stderr = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import json"], capture_output=True, text=True, check=True
    ).stderr
    json_line = next(line for line in stderr.splitlines() if line.rstrip().endswith("| json"))
    parsed = {p.name: p for p in coldstart.parse_importtime(stderr)}
    assert parsed["json"].cumulative_s == int(json_line.split("|")[1]) / 1e6
    # A package nested under another one's import is summed into its own entry, not the outer one's twice.
    synthetic = (
        "import time:       100 |        100 |     b.x\n"
        "import time:        50 |        150 |   b\n"
        "import time:        10 |        160 | a\n"
        "import time:        20 |         20 | b.y\n"
    )
    parsed = {p.name: p for p in coldstart.parse_importtime(synthetic)}
    assert (parsed["a"].cumulative_s, parsed["b"].cumulative_s) == (160e-6, 170e-6)
    assert parsed["b"].self_s == 170e-6

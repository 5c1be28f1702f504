"""What a person reads: no-op deploys say `unchanged`, tables fit 80 columns, sizes in SI units,
the install line counts what is installed, and without a terminal each item is one line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from deploy import build, report
from deploy.aws.publish import short_key
from deploy.run import show
from deploy.steps import Outcome, Status


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Console:
    """An 80-column console that is not a terminal (as in CI), recording what is printed."""
    console = Console(width=80, record=True, force_terminal=False, soft_wrap=True, highlight=False)
    monkeypatch.setattr(report, "console", console)
    return console


def test_an_alias_that_did_not_move_reads_unchanged() -> None:
    assert show.live_change("3", "3") == "3 (unchanged)"
    assert show.live_change("3", None) == "3 (unchanged)"
    assert show.live_change("1", "2") == "1 → 2"


def test_a_no_op_deploy_summary(screen: Console) -> None:
    functions = [
        Outcome(name=f"bluemoxon-local-{n}", status=Status.UNCHANGED, old_version="3", new_version="3")
        for n in ("api", "eval-runbook-worker")
    ]
    done = report.DeployReport(env="local", dry_run=False, ok=True, functions=functions, seconds=2.9)
    show._summary(done)
    text = screen.export_text()
    assert "3 (unchanged)" in text
    assert "None" not in text and "→" not in text
    assert "nothing changed in 2.9 s; 0 AWS write call(s)" in text


def test_tables_fit_80_columns_cutting_the_middle_of_names(screen: Console) -> None:
    rows = [("bluemoxon-production-eval-runbook-worker", "rolled_back", "12 → 13", "ResourceConflictException")]
    report.table("attach production", ["function", "outcome", "live", "error"], rows)
    lines = screen.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("bluemoxon-pro…runbook-worker" in line for line in lines)


def test_sizes_are_si_units() -> None:
    assert report.human_size(14_900) == "14.9 kB"
    assert report.human_size(40_400_000) == "40.4 MB"


def test_hashes_in_keys_are_cut_to_12() -> None:
    digest = "ceae9533bcddb338ab74f73c62e58f347ad1d68d5b5ad13acc9a4fd0d808a349"
    assert short_key(f"lambda/layer-{digest}.zip") == "lambda/layer-ceae9533bcdd….zip"


def test_the_install_count_is_what_applies_to_the_target() -> None:
    """The count the build prints is the identity's pins (``build._for_target``): markers evaluated for
    the runtime and architecture (``lock.resolved_for``), so tzdata's win32 line does not count."""
    from deploy.lock import resolved_for, target_environment

    def req(i: int, markers: str | None) -> SimpleNamespace:
        return SimpleNamespace(name=f"pkg{i}", extras=(), version="1.0", hashes=(), markers=markers)

    requirements = [
        req(0, None),
        req(1, 'python_version >= "3.11" and python_version < "3.14"'),
        req(2, 'python_version >= "3.11" and python_version < "3.14" and sys_platform == "win32"'),  # tzdata
        req(3, 'implementation_name != "pypy"'),
        req(4, 'platform_machine == "aarch64"'),
    ]
    x86 = resolved_for(requirements, target_environment("3.12", "x86_64"))  # type: ignore[arg-type]
    arm = resolved_for(requirements, target_environment("3.12", "arm64"))  # type: ignore[arg-type]
    assert len(x86) == 3
    assert len(arm) == 4
    plan = SimpleNamespace(identity=SimpleNamespace(requirements=tuple(x86)))
    assert build._for_target(plan) == 3  # type: ignore[arg-type]


def test_without_a_terminal_each_function_is_one_line_as_it_finishes(screen: Console) -> None:
    with report.item_lines(["bluemoxon-local-api", "bluemoxon-local-cleanup"], "running", idle="unchanged") as lines:
        lines.update("bluemoxon-local-api", "setting layers")  # shown on a terminal only
        lines.done("bluemoxon-local-api", True, "import 602 ms; health ok; 1214 ms")
    assert screen.export_text().splitlines() == [
        "✓ bluemoxon-local-api: import 602 ms; health ok; 1214 ms",
        "– bluemoxon-local-cleanup: unchanged",  # nothing ran for it: no ✓ (issue: a ✓ only for what passed)
    ]


def test_a_check_mark_only_for_what_ran_and_passed_in_full(screen: Console) -> None:
    from types import SimpleNamespace

    from deploy.run import show

    skipped = SimpleNamespace(
        import_only=False, results=[SimpleNamespace(skipped=True), SimpleNamespace(skipped=False)]
    )
    full = SimpleNamespace(import_only=False, results=[SimpleNamespace(skipped=False)])
    with report.item_lines(["fn-a", "fn-b", "fn-c", "fn-d"], "running") as lines:
        lines.done("fn-a", True, "health ok, admin ok", import_only=show._partial(full))
        lines.done("fn-b", True, "health ok, admin skipped", import_only=show._partial(skipped))
        lines.done("fn-c", False, "health FAILED")
    assert screen.export_text().splitlines() == [
        "✓ fn-a: health ok, admin ok",
        "○ fn-b: health ok, admin skipped",
        "✗ fn-c: health FAILED",
        "– fn-d: no result",
    ]


def test_without_a_terminal_a_step_is_its_first_line_and_an_upload_one_line(screen: Console) -> None:
    with report.step("terraform apply (local): planning") as line:
        line.update("terraform apply (local): 1/28 done")
    with report.transfer("uploading layer ceae9533bcdd", 40_400_000) as sent:
        sent(20_000_000)
        sent(20_400_000)
    assert screen.export_text().splitlines() == [
        "› terraform apply (local): planning",
        "› uploading layer ceae9533bcdd (40.4 MB)",
    ]

"""Every checkov skip in infra/terraform is in place, names one real check and says why.

checkov (run by the `terraform` nox session) reads a skip only from a comment inside the
resource or module block it suppresses; anywhere else the comment is dead text that looks
like a justification. Without a reason checkov records "No comment provided" and still
passes, so the reason is what these tests enforce. Pure text parsing: checkov itself is not
needed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"

# checkov's own pattern (checkov/common/comment/enum.py), so we see what it sees.
SKIP = re.compile(r"(checkov:skip=|bridgecrew:skip=|cortex:skip=) *([A-Za-z_\d-]+(?:,[A-Za-z_\d-]+)*)?(:[^\n]*)?")
CHECK_ID = re.compile(r"CKV2?_AWS_\d+")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
BLOCK_START = re.compile(r'^(resource|module)\s+"[^"]+"(\s+"[^"]+")?\s*\{\s*$')
MIN_REASON = 40


@dataclass(frozen=True, kw_only=True)
class Skip:
    file: Path
    line: int
    ids: tuple[str, ...]
    reason: str
    block: str | None

    def where(self) -> str:
        return f"{self.file.relative_to(TERRAFORM)}:{self.line}"


def _blocks(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line, last line, header) of each top-level resource/module block, 1-based."""
    blocks: list[tuple[int, int, str]] = []
    start: tuple[int, str] | None = None
    depth = 0
    for number, line in enumerate(lines, start=1):
        # Braces and "#" inside string literals are neither blocks nor comments.
        code = STRING.sub('""', line)
        code = code.split("#", 1)[0].split("//", 1)[0]
        header = BLOCK_START.match(line.strip())
        if start is None and depth == 0 and header:
            start = (number, line.strip().rstrip("{").strip())
        depth += code.count("{") - code.count("}")
        if start is not None and depth == 0:
            blocks.append((start[0], number, start[1]))
            start = None
    return blocks


def collect_skips(root: Path) -> list[Skip]:
    skips: list[Skip] = []
    for path in sorted(root.rglob("*.tf")):
        if any(part.startswith(".terraform") for part in path.relative_to(root).parts):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        blocks = _blocks(lines)
        for number, line in enumerate(lines, start=1):
            match = SKIP.search(line)
            if match is None:
                continue
            inside = [header for first, last, header in blocks if first < number < last]
            skips.append(
                Skip(
                    file=path,
                    line=number,
                    ids=tuple(i.strip() for i in (match.group(2) or "").split(",") if i.strip()),
                    reason=(match.group(3) or "")[1:].strip(),
                    block=inside[0] if inside else None,
                )
            )
    return skips


SKIPS = collect_skips(TERRAFORM)


def test_the_scan_finds_the_skips() -> None:
    # Guards the tests below against passing on an empty list (wrong directory, changed syntax).
    assert len(SKIPS) >= 10


@pytest.mark.parametrize("skip", SKIPS, ids=lambda s: s.where())
def test_skip_names_one_check(skip: Skip) -> None:
    assert len(skip.ids) == 1, f"{skip.where()}: one check per skip comment, each with its own reason"
    assert CHECK_ID.fullmatch(skip.ids[0]), f"{skip.where()}: {skip.ids[0]!r} is not a checkov AWS check ID"


@pytest.mark.parametrize("skip", SKIPS, ids=lambda s: s.where())
def test_skip_says_why(skip: Skip) -> None:
    assert len(skip.reason) >= MIN_REASON, (
        f"{skip.where()}: skip of {', '.join(skip.ids)} needs a reason specific to this project "
        f"(at least {MIN_REASON} characters), got {skip.reason!r}"
    )


@pytest.mark.parametrize("skip", SKIPS, ids=lambda s: s.where())
def test_skip_sits_inside_the_block_it_suppresses(skip: Skip) -> None:
    assert skip.block is not None, f"{skip.where()}: checkov ignores a skip outside a resource or module block"


def test_no_check_is_skipped_twice_in_one_block() -> None:
    seen: dict[tuple[Path, str, str], str] = {}
    for skip in SKIPS:
        for check in skip.ids:
            key = (skip.file, skip.block or "", check)
            assert key not in seen, f"{skip.where()}: {check} already skipped at {seen[key]}"
            seen[key] = skip.where()


def test_no_global_skip_list() -> None:
    # Skips live on the resources they excuse, where a reviewer sees them; a config file's
    # skip-check would silence a check for every resource, future ones included.
    for folder in (TERRAFORM, TERRAFORM.parents[1]):
        for name in (".checkov.yaml", ".checkov.yml"):
            config = folder / name
            if config.exists():
                assert "skip-check" not in config.read_text(encoding="utf-8"), f"{config}: skip in place instead"


def test_collect_skips_reads_what_checkov_reads(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        "# checkov:skip=CKV_AWS_1: outside any block, ignored by checkov\n"
        'resource "aws_s3_bucket" "b" {\n'
        "  # checkov:skip=CKV_AWS_18,CKV_AWS_144\n"
        '  bucket = "b"\n'
        '  tags = { a = "{", b = "https://x#y" }\n'
        "}\n",
        encoding="utf-8",
    )
    outside, inside = collect_skips(tmp_path)
    assert outside.block is None and outside.reason == "outside any block, ignored by checkov"
    assert inside.block == 'resource "aws_s3_bucket" "b"'
    assert inside.ids == ("CKV_AWS_18", "CKV_AWS_144") and inside.reason == ""

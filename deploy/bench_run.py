"""`inv bench`: every case in one run, its results written to bench.json and bench.md (quoted by the README).

Apart from the cases (deploy/bench.py, deploy/bench_code_only.py) so the code-only case, which reuses
the cases' helpers, is not imported back by the module it imports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from deploy import bench
from deploy.bench import Measurement
from deploy.bench_code_only import bench_code_only
from deploy.config import EnvConfig
from deploy.report import say, table

# ---------------------------------------------------------------------------- output


def to_markdown(results: list[Measurement], meta: dict[str, Any]) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['machine']} ({meta['cpus']} CPUs), median of {meta['runs']} runs.",
        "",
        "| measurement | median | runs | target | met | note |",
        "|---|---:|---|---|---|---|",
    ]
    for m in results:
        met = "" if m.met is None else ("yes" if m.met else "**no**")
        runs = ", ".join(f"{r:.2f}" for r in m.runs)
        lines.append(f"| {m.name} | {m.median:.2f} s | {runs} | {m.target} | {met} | {m.note} |")
    return "\n".join(lines) + "\n"


def run_all(env: EnvConfig, *, runs: int = 3, output: Path, only: str | None = None) -> list[Measurement]:
    output.mkdir(parents=True, exist_ok=True)
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        if only in (None, "build"):
            results += bench.bench_build(env, runs, work / "build")
        if only in (None, "coldstart"):
            results += bench.bench_coldstart(env, runs, work / "coldstart")
        if only in (None, "deploy"):
            results += bench.bench_deploy(env, runs, work / "deploy")
        if only in (None, "deploy", "attach"):
            results += bench.bench_attach(env, runs, work / "attach")
        if only in (None, "cache"):
            results += bench.bench_cache(env, runs, work / "cache")
        if only == "code-only":  # two first deploys: not part of the default run
            results += bench_code_only(env, runs, work / "code-only")
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "runs": runs,
        "python": platform.python_version(),
    }
    data = {"meta": meta, "results": [{**dataclasses.asdict(m), "median": m.median} for m in results]}
    (output / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    (output / "bench.md").write_text(to_markdown(results, meta))
    table(
        "benchmarks",
        ["measurement", "median", "target", "met", "note"],
        [(m.name, f"{m.median:.2f} s", m.target, "" if m.met is None else m.met, m.note) for m in results],
    )
    say(f"written {output / 'bench.json'} and {output / 'bench.md'}")
    return results

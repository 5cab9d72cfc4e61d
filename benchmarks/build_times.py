"""Build and load times for bench_dfun.py: cold builds (a fresh cache, in a subprocess, stage
timings from BuildResult.timings) and warm loads (a fresh subprocess with the cache filled)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import fmt_time, log

COLD_BUILD_CODE = r"""
import json, sys, time
start = time.perf_counter()
import mfgen
imported = time.perf_counter()
result = mfgen.build(sys.argv[1], force=True)
done = time.perf_counter()
print("MFGEN_BENCH " + json.dumps({"import": imported - start, "build_wall": done - imported,
                                    "timings": result.timings, "compiled": result.compiled}))
"""

WARM_LOAD_CODE = r"""
import json, sys, time
start = time.perf_counter()
import numpy
numpy_done = time.perf_counter()
import mfgen
imported = time.perf_counter()
model = mfgen.load(sys.argv[1])
loaded = time.perf_counter()
print("MFGEN_BENCH " + json.dumps({"numpy": numpy_done - start, "import": imported - start,
                                    "load": loaded - imported,
                                    "sympy": "sympy" in sys.modules,
                                    "regenerated": "mfgen.codegen.ir" in sys.modules}))
"""

SYMPY_IMPORT_CODE = r"""
import json, time
start = time.perf_counter()
import sympy
print("MFGEN_BENCH " + json.dumps({"import": time.perf_counter() - start}))
"""


def run_child(code: str, spec: str, cache_dir: Path, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, MFGEN_CACHE_DIR=str(cache_dir))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code, spec], capture_output=True,
                              text=True, env=env, timeout=timeout, cwd=str(cache_dir))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith("MFGEN_BENCH "):
            data = json.loads(line[len("MFGEN_BENCH "):])
            data["process_wall"] = wall
            return data
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    error = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln),
                 lines[-1] if lines else f"exit status {proc.returncode}")
    return {"error": error[:200]}


@dataclass
class BuildStats:
    cold: list[dict[str, Any]] = field(default_factory=list)
    warm: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cache_dir: Path | None = None
    regenerated: int = 0  # warm loads that rebuilt (spec/generator edited meanwhile), redone


def measure_builds(specs: list[str], workdir: Path, cold_repeats: int, warm_repeats: int,
                   budget_s: float) -> tuple[dict[str, BuildStats], list[float]]:
    """Cold builds (each in a fresh cache) and warm loads (from the newest of those caches).

    With cold_repeats == 0 (--quick) the specs are built if needed into the normal cache
    ($MFGEN_CACHE_DIR or ~/.cache/mfgen), and the warm loads use that.
    """
    stats = {spec: BuildStats() for spec in specs}
    sympy_times: list[float] = []
    started = time.perf_counter()
    if cold_repeats == 0:
        import mfgen
        from mfgen.runtime.cache import cache_root

        log("  building into the normal cache where needed (slow only the first time)")
        for spec in specs:
            try:
                mfgen.build(spec)
                stats[spec].cache_dir = cache_root()
            except Exception as exc:  # noqa: BLE001 - a spec being edited must not stop the run
                stats[spec].error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    for rep in range(cold_repeats):
        if rep == 1:
            started = time.perf_counter()  # the budget covers the repeats only
        for spec in specs:
            entry = stats[spec]
            if entry.error or (rep and time.perf_counter() - started > budget_s):
                continue
            cache_dir = Path(tempfile.mkdtemp(prefix=f"cold-{spec}-", dir=workdir))
            log(f"  cold build {rep + 1}/{cold_repeats}: {spec}")
            data = run_child(COLD_BUILD_CODE, spec, cache_dir, timeout=600)
            if "error" in data:
                entry.error = data["error"]
                shutil.rmtree(cache_dir, ignore_errors=True)
                continue
            entry.cold.append(data)
            if entry.cache_dir is not None:
                shutil.rmtree(entry.cache_dir, ignore_errors=True)
            entry.cache_dir = cache_dir  # the newest populated cache serves the warm loads
    for rep in range(warm_repeats):
        data = run_child(SYMPY_IMPORT_CODE, "", workdir, timeout=300)
        if "import" in data:
            sympy_times.append(data["import"])
        for spec in specs:
            entry = stats[spec]
            if entry.error or entry.cache_dir is None:
                continue
            log(f"  warm load {rep + 1}/{warm_repeats}: {spec}")
            for _ in range(3):  # a regenerating load (spec or generator edited) is redone
                data = run_child(WARM_LOAD_CODE, spec, entry.cache_dir, timeout=300)
                if "error" in data or not data.get("regenerated"):
                    break
                entry.regenerated += 1
            if "error" in data:
                entry.error = f"warm load failed: {data['error']}"
                continue
            entry.warm.append(data)
    return stats, sympy_times


def build_table(stats: dict[str, BuildStats]) -> list[str]:
    lines = ["| spec | parse | IR | optimise | render | compile | stages total | "
             "build() wall | import mfgen | warm load | import + load | SymPy imported by "
             "warm load | samples (cold/warm) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for spec, entry in stats.items():
        if entry.cache_dir is None:
            lines.append(f"| {spec} | build failed: {str(entry.error).replace('|', '/')} "
                         "| | | | | | | | | | | |")
            continue

        def med(key: str, sub: str | None = None, samples: list[dict[str, Any]] = entry.cold
                ) -> float:
            values = [s[sub][key] if sub else s[key] for s in samples
                      if (s.get(sub, {}) if sub else s).get(key) is not None]
            return statistics.median(values) if values else float("nan")

        stages = [med(k, "timings") for k in ("parse", "ir", "optimize", "render", "compile")]
        total = statistics.median(sum(s["timings"].get(k, 0.0) for k in
                                      ("parse", "ir", "optimize", "render", "compile"))
                                  for s in entry.cold) if entry.cold else float("nan")
        warm = entry.warm
        imp = med("import", samples=warm)
        load = med("load", samples=warm)
        both = statistics.median(s["import"] + s["load"] for s in warm) if warm else float("nan")
        sympy = ("yes" if all(s.get("sympy") for s in warm) else
                 "no" if not any(s.get("sympy") for s in warm) else "some") if warm else "-"
        redo = f" ({entry.regenerated} regenerated, redone)" if entry.regenerated else ""
        lines.append(
            f"| {spec} | " + " | ".join(fmt_time(x) for x in stages) +
            f" | {fmt_time(total)} | {fmt_time(med('build_wall'))} | {fmt_time(imp)} | "
            f"{fmt_time(load)} | {fmt_time(both)} | {sympy} | "
            f"{len(entry.cold)}/{len(warm)}{redo} |")
    return lines

#!/usr/bin/env python
"""Speed benchmarks (not tests) for mfgen's generated kernels.

Measured side by side in one run, for every bundled spec (or those named with --specs):

* dfun time at N = 76, 1 000 and 100 000 nodes: the compiled C kernel (with a preallocated
  ``out=``, and without it at N <= 1 000), the bare kernel (called from a C loop), the spec's
  generated NumPy reference, the hand-written seed port (tests/seed_ports.py) and the real
  TVB 2.10 ``dfun`` where they exist (dfun_cases.py);
* cold build time and warm load time, in subprocesses (build_times.py).

Timing, machine description and expectations are in harness.py. Expectations (--check, `make
bench-check`) are ratios of implementations timed side by side, so load does not fail them.

    .venv/bin/python benchmarks/bench_dfun.py            # full run (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_dfun.py --quick    # short run (< 1 min, warm cache)
    .venv/bin/python benchmarks/bench_dfun.py --specs tvb_adex_first_order generic_2d_oscillator
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_times import BuildStats, build_table, measure_builds  # noqa: E402
from dfun_cases import TVB_ANCHORS, Row, bench_spec, load_seed_ports, load_tvb  # noqa: E402
from harness import (  # noqa: E402
    ROOT,
    Candidate,
    Expectation,
    Timing,
    _loadavg,
    command,
    fmt_ns,
    fmt_ratio,
    fmt_time,
    log,
    machine_info,
    report_expectations,
)

DEFAULT_OUTPUT = ROOT / "benchmarks" / "results.md"
SIZES = (76, 1000, 100_000)

# Issue 2's anchors as ratios: TVB 350 ns/node (first order) and 3311 ns/node (second order)
# at N = 1 000 against generated kernels of 20 and 60 ns/node; issue 8: model.dfun <= 2.5 us
# at N = 76 where the bare kernel takes 1.6 us.
TVB_OVER_C_FIRST_ORDER = 350.0 / 20.0
TVB_OVER_C_SECOND_ORDER = 3311.0 / 60.0
WRAPPER_OVER_KERNEL = 2.5 / 1.6


def bundled_specs() -> list[str]:
    from mfgen.codegen.locate import bundled_spec_names

    return list(bundled_spec_names())


def _zerlaut_family(spec: str) -> bool:
    return "zerlaut" in spec or "adex" in spec


def expectations(rows: list[Row]) -> list[Expectation]:
    """One expectation per Zerlaut-family row where an anchor applies."""
    found: list[Expectation] = []
    for row in rows:
        if not _zerlaut_family(row.spec):
            continue
        second = "second_order" in row.spec
        compiled = row.results.get("C out=")
        if row.n == 1000 and row.tvb_class is not None:
            tvb = row.results.get("TVB")
            ratio = (tvb.median / compiled.median if tvb and tvb.per_call and compiled
                     and compiled.per_call else None)
            limit = TVB_OVER_C_SECOND_ORDER if second else TVB_OVER_C_FIRST_ORDER
            found.append(Expectation(
                f"{row.spec} TVB/C at N=1000", ratio, limit, False,
                "issue 2: TVB's dfun over the generated kernel, "
                + ("3311/60 ns/node" if second else "350/20 ns/node")))
        if row.n == 76 and not second:
            plain, bare = row.results.get("C"), row.results.get("C kernel only")
            ratio = (plain.median / bare.median if plain and bare and plain.per_call
                     and bare.per_call else None)
            found.append(Expectation(
                f"{row.spec} model.dfun/kernel at N=76", ratio, WRAPPER_OVER_KERNEL, True,
                "issue 8: model.dfun 2.5 us over a 1.6 us kernel"))
    return found


def _cell(cand: Candidate | None, n: int) -> str:
    if cand is None or not cand.per_call:
        return "-"
    return f"{fmt_time(cand.median)} ({fmt_ns(cand.median / n * 1e9)})"


def _anchor(row: Row) -> str:
    if row.tvb_class not in TVB_ANCHORS or row.n not in TVB_ANCHORS[row.tvb_class]:
        return ""
    unit, value = TVB_ANCHORS[row.tvb_class][row.n]
    cand = row.results.get("TVB")
    if cand is None or not cand.per_call:
        return f"TVB anchor {value:g} {unit}"
    measured = cand.median * 1e6 if unit == "us/call" else cand.median / row.n * 1e9
    return f"TVB anchor {value:g} {unit} (here {fmt_ns(measured)})"


def dfun_table(rows: list[Row]) -> list[str]:
    lines = [
        "| spec | N | C out= | C (no out=) | C kernel only | NumPy ref | ref/C | seed port | "
        "seed/C | TVB | TVB/C | anchor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        res = row.results
        base = res.get("C out=")
        base_t = base.median if base and base.per_call else float("nan")

        def ratio(label: str, res: dict[str, Candidate] = res, base_t: float = base_t) -> str:
            cand = res.get(label)
            return fmt_ratio(cand.median / base_t) if cand and cand.per_call else "-"

        seed_label = next((k for k in res if k.startswith("seed")), None)
        note = _anchor(row)
        seed_cell = (f"{seed_label.split()[1]}: {_cell(res[seed_label], row.n)}"
                     if seed_label else "-")
        lines.append(
            f"| {row.spec} | {row.n:,} | {_cell(base, row.n)} | {_cell(res.get('C'), row.n)} | "
            f"{_cell(res.get('C kernel only'), row.n)} | {_cell(res.get('NumPy ref'), row.n)} | "
            f"{ratio('NumPy ref')} | "
            f"{seed_cell} | {ratio(seed_label) if seed_label else '-'} | "
            f"{_cell(res.get('TVB'), row.n)} | {ratio('TVB')} | {note} |")
    return lines


def detail_table(rows: list[Row]) -> list[str]:
    lines = ["| spec | N | implementation | median / call | best round | ns/node (median) | "
             "rounds x calls | spread (max-min)/median |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for label, cand in row.results.items():
            if not cand.per_call:
                continue
            lines.append(f"| {row.spec} | {row.n:,} | {label} | {fmt_time(cand.median)} | "
                         f"{fmt_time(min(cand.per_call))} | "
                         f"{fmt_ns(cand.median / row.n * 1e9)} | "
                         f"{len(cand.per_call)} x {cand.calls} | "
                         f"{'-' if np.isnan(cand.spread) else f'{cand.spread:.0%}'} |")
    return lines


def render_report(info: dict[str, str], command: str, settings: str, rows: list[Row],
                  stats: dict[str, BuildStats], extra: list[str], elapsed: float,
                  checks: list[Expectation]) -> str:
    out = ["# mfgen dfun benchmarks", "",
           f"Command: `{command}` (in `{ROOT}`)", "",
           f"Settings: {settings}. Total run time {elapsed:.0f} s.", "",
           "| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out += ["", "## dfun time per call (ns per node in parentheses)", "",
            "Medians of CPU time over interleaved rounds. `C out=`: compiled kernel with a "
            "preallocated "
            "output; `C`: the same without `out=` (N <= 1000). Ratios are relative to `C out=`. "
            "Seed ports are the hand-written NumPy oracles (finite differences for seeds 5-7; "
            "their erfc is `np.vectorize(math.erfc)`). TVB is tvb-library's `dfun` at its "
            "defaults, after a warm-up call.", ""]
    out += dfun_table(rows)
    out += ["", "Anchors from the issues: TVB ZerlautAdaptationFirstOrder 350 ns/node at "
            "N=1000 and 109 us/call at N=76; ZerlautAdaptationSecondOrder 3311 ns/node at "
            "N=1000 (912 us/call at N=76). Expectations (ratios, side by side):", ""]
    out += [f"- {e.line()}" for e in checks] + [""]
    notes = [f"- {row.spec} N={row.n:,}: {'; '.join(row.notes)}" for row in rows if row.notes]
    if notes or extra:
        out += ["### Notes", ""] + [f"- {x}" for x in extra] + notes + [""]
    out += ["## Build and load time", "",
            "Cold: `mfgen.build(spec, force=True)` in a subprocess with a fresh "
            "`MFGEN_CACHE_DIR` (stage timings from `.timings`; `build() wall` also includes "
            "SymPy's import). Warm: a fresh subprocess with the populated cache, timed inside "
            "it; `import mfgen` includes NumPy's import. A warm load that regenerated code "
            "(the spec or generator was edited meanwhile) is discarded and redone.", ""]
    out += build_table(stats)
    out += ["", "## All measurements", ""]
    out += detail_table(rows)
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short run (< 1 min with a warm cache): fewer rounds, no cold "
                        "builds (specs are built into the normal cache if needed)")
    parser.add_argument("--specs", nargs="+", metavar="SPEC",
                        help="bundled spec names to benchmark (default: all; comma lists ok)")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        default=SIZES, help="node counts, comma-separated (default 76,1000,100000)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"markdown report path (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--no-build", action="store_true",
                        help="skip the cold-build/warm-load measurements (uses the normal cache)")
    parser.add_argument("--no-tvb", action="store_true", help="skip TVB even if installed")
    parser.add_argument("--cold-repeats", type=int, default=1, metavar="K",
                        help="cold builds per spec in a full run (default 1; each takes 2-30 s)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when an expectation (a ratio) is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall_start = time.perf_counter()
    run_command = command(argv)
    import mfgen

    available = bundled_specs()
    if args.specs:
        specs = [s for item in args.specs for s in item.split(",") if s]
        unknown = [s for s in specs if s not in available]
        if unknown:
            log(f"unknown spec(s) {unknown}; bundled specs: {', '.join(available)}")
            return 2
    else:
        specs = available
    if args.quick:
        timing = Timing(target_s=0.05, rounds=3, min_rounds=2, very_slow_s=0.1,
                        first_call_only_s=0.1, seed_max_n=1000)
        cold_repeats, warm_repeats, cold_budget_s = 0, 1, 0.0
        settings = ("--quick: ~0.05 s of calls per measurement in 3 interleaved rounds; a "
                    "call slower than 0.1 s is timed once (no warm-up); seed ports only up to "
                    "N = 1,000; no cold builds (specs built if needed into the normal cache), "
                    "warm loads x1")
    else:
        timing = Timing(target_s=0.2, rounds=11, min_rounds=3, very_slow_s=0.5,
                        first_call_only_s=None)
        cold_repeats, warm_repeats, cold_budget_s = args.cold_repeats, 2, 60.0
        settings = ("full: ~0.2 s of calls per measurement in 11 interleaved rounds after an "
                    "untimed call; a call longer than one round's budget is repeated 3 times "
                    f"(2 past 0.5 s); cold builds x{cold_repeats} (repeats only within a 60 s "
                    "budget), warm loads x2")
    settings += f"; N = {', '.join(f'{n:,}' for n in args.sizes)}"
    info = machine_info()
    log(f"mfgen benchmarks: {len(specs)} spec(s): {', '.join(specs)}")
    extra: list[str] = []

    workdir = Path(tempfile.mkdtemp(prefix="mfgen-bench-"))
    try:
        stats: dict[str, BuildStats] = {}
        if not args.no_build:
            log("build / load times:")
            stats, sympy_times = measure_builds(specs, workdir, cold_repeats, warm_repeats,
                                                budget_s=cold_budget_s)
            if sympy_times:
                extra.append(f"`import sympy` alone in a fresh process: "
                             f"{fmt_time(statistics.median(sympy_times))} (median of "
                             f"{len(sympy_times)}); a warm load marked 'SymPy imported' pays it")
        seeds = load_seed_ports()
        if seeds is None:
            extra.append("tests/seed_ports.py not found: no seed-port timings")
        tvb: dict[str, ModuleType] = {}
        if not args.no_tvb:
            tvb, tvb_error, tvb_import = load_tvb(specs)
            if tvb_error:
                extra.append(tvb_error)
            elif tvb:
                extra.append(f"TVB model modules imported in {tvb_import:.1f} s "
                             f"({', '.join(sorted(tvb))})")
        rows: list[Row] = []
        for spec in specs:
            entry = stats.get(spec)
            if entry is not None and entry.cache_dir is None:
                extra.append(f"{spec}: not benchmarked, build failed: {entry.error}")
                continue
            if entry is not None and entry.cache_dir is not None:
                os.environ["MFGEN_CACHE_DIR"] = str(entry.cache_dir)
            log(f"dfun: {spec}")
            try:
                model = mfgen.load(spec)
            except Exception as exc:  # noqa: BLE001 - a spec being edited must not stop the run
                extra.append(f"{spec}: not benchmarked, load failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]}")
                continue
            try:
                rows += bench_spec(spec, model, args.sizes, seeds, tvb, timing)
            except Exception as exc:  # noqa: BLE001
                extra.append(f"{spec}: benchmark failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    info["load average (end)"] = _loadavg()
    checks = expectations(rows)
    report = render_report(info, run_command, settings, rows, stats, extra,
                           time.perf_counter() - wall_start, checks)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"wrote {args.output}")
    return report_expectations(checks, args.check)


if __name__ == "__main__":
    sys.exit(main())

"""The `mfgen` command line: build, check, show and list model specs."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from mfgen.errors import MfgenError


def _specs(args: argparse.Namespace) -> list[str]:
    from mfgen.codegen.spec import bundled_spec_names

    if args.all:
        return bundled_spec_names()
    if not args.specs:
        raise MfgenError("name one or more specs (a path or a bundled name), or pass --all")
    return list(args.specs)


def _build(args: argparse.Namespace) -> int:
    import mfgen

    for spec in _specs(args):
        start = time.perf_counter()
        result = mfgen.build(spec, force=args.force, emit_c=args.emit_c)
        elapsed = time.perf_counter() - start
        what = "compiled" if result.compiled else "cached"
        print(f"{result.entry['model']['name']:<40} {what:<9} {elapsed:8.3f} s  "
              f"{result.module_dir}")
        if args.emit_c:
            print(f"{'':<40} wrote {args.emit_c}/{result.entry['model']['name']}.c")
    return 0


def _check(args: argparse.Namespace) -> int:
    import mfgen
    from mfgen.runtime.checking import check_model

    header = (f"{'model':<38} {'states':>6} {'params':>6} {'ops/CSE':>8} {'build s':>8} "
              f"{'max rel err':>12} {'non-finite':>10}  result")
    print(header)
    print("-" * len(header))
    failed = 0
    for spec in _specs(args):
        start = time.perf_counter()
        result = mfgen.build(spec)
        build_time = time.perf_counter() - start
        model = mfgen.load(spec)
        report = check_model(model, points=args.points, seed=args.seed, rtol=args.rtol)
        failed += not report.passed
        stats = model.metadata["stats"]
        print(f"{model.name:<38} {model.n_states:>6} {len(model.parameters):>6} "
              f"{stats['operations_after_cse']:>8} {build_time:>8.3f} {report.worst:>12.2e} "
              f"{report.nonfinite:>10}  {'ok' if report.passed else 'FAILED'}"
              + ("" if result.compiled or not args.verbose else "  (from cache)"))
        if args.verbose or not report.passed:
            for name, error in report.max_error.items():
                print(f"    d{name}/dt: max relative error {error:.2e}")
            if report.nonfinite_mismatch:
                print(f"    {report.nonfinite_mismatch} values finite in one backend only")
    print(f"\ncompiled C vs NumPy reference at {args.points} random points per model "
          f"(tolerance {args.rtol:g}, relative with a floor of 1% of each row's scale)")
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    import mfgen

    for spec in _specs(args):
        result = mfgen.build(spec)
        model = result.entry["model"]
        print(f"{model['name']}: {model['description'].strip()}")
        print(f"  states: {', '.join(s['name'] for s in model['states'])}")
        print(f"  coupling: {', '.join(c['name'] + '<-' + c['state'] for c in model['coupling'])}")
        print(f"  parameters: {', '.join(p['name'] for p in model['parameters'])}")
        if args.stats:
            stats = model["stats"]
            calls = ", ".join(f"{k} {v}" for k, v in stats["calls_per_node"].items()) or "none"
            print(f"  statements in the IR: {stats['statements_ir']}, after optimisation: "
                  f"{stats['statements']} ({stats['loop_invariant_statements']} hoisted out "
                  "of the node loop)")
            print(f"  operations before CSE: {stats['operations_before_cse']}, after CSE: "
                  f"{stats['operations_after_cse']}")
            print(f"  transcendental calls per node: {calls}")
        if args.c:
            print((result.module_dir / "kernel.c").read_text())
    return 0


def _list(args: argparse.Namespace) -> int:
    from mfgen.codegen.spec import bundled_spec_dir, bundled_spec_names

    for name in bundled_spec_names():
        print(f"{name:<40} {bundled_spec_dir() / (name + '.yaml')}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mfgen", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def with_specs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("specs", nargs="*", help="spec files or bundled spec names")
        p.add_argument("--all", action="store_true", help="every bundled spec")
        return p

    build = with_specs(sub.add_parser("build", help="generate and compile specs (cached)"))
    build.add_argument("--emit-c", metavar="DIR", help="also write the generated C and NumPy")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(run=_build)

    check = with_specs(sub.add_parser("check", help="compiled kernel vs NumPy reference"))
    check.add_argument("--points", type=int, default=2000)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--rtol", type=float, default=1e-12)
    check.add_argument("-v", "--verbose", action="store_true")
    check.set_defaults(run=_check)

    show = with_specs(sub.add_parser("show", help="describe a model"))
    show.add_argument("--stats", action="store_true", help="operation and call counts")
    show.add_argument("--c", action="store_true", help="print the generated C")
    show.set_defaults(run=_show)

    listing = sub.add_parser("list", help="bundled specs")
    listing.set_defaults(run=_list)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except MfgenError as exc:
        print(f"mfgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

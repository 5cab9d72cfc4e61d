"""Targets: where generated code runs, chosen at build time.

A target bundles what differs from one kind of hardware to another: the expression printer,
the template folder, compiler flags and libraries, and the pragma helpers the templates call
(`parallel_for()`, `simd()`, ...). The C target runs the simulator on one thread; the OpenMP
target runs it over the nodes on a persistent team of threads (one parallel region per chunk of
steps, barriers only where a step needs every node). A GPU target is one more entry here, not
edits across the pipeline. Every target's simulator also has the batched sweep kernel
(simulate_batch_*, stages.c.j2): parallel over the sets with OpenMP, one after the other in C.

Results do not depend on the target or the thread count: every node is computed by the same
code in the same order, the noise is keyed by (seed, step, state, node), and nothing is summed
across threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from mfgen.errors import MfgenError


def _c_expression(*args: object, **options: object) -> str:
    # SymPy only when code is generated: loading a cached simulator selects a target too, and
    # importing SymPy there cost a warm start 1.3 s.
    from mfgen.codegen.printing import c_expression

    return c_expression(*args, **options)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    printer: Callable[..., str] = field(default=_c_expression, compare=False)
    template_package: str = "mfgen.templates"
    flags: tuple[str, ...] = ()  # added to the toolchain's flags
    libraries: tuple[str, ...] = ()
    threads: bool = False  # whether the simulator runs a team of threads over the nodes

    def simd(self) -> str:
        """A loop over nodes (or state x nodes) whose iterations are independent."""
        return "#pragma omp simd"

    def parallel_region(self) -> str:
        """Opens the time loop's persistent team (one per C call)."""
        return "#pragma omp parallel num_threads(sim->n_threads)" if self.threads else ""

    def barrier(self) -> str:
        return "#pragma omp barrier" if self.threads else ""

    def single(self) -> str:
        """The next statement runs on one thread, the others wait for it."""
        return "#pragma omp single" if self.threads else ""

    def parallel_for(self) -> str:
        """Shares a loop's iterations among the team (static split: the same for every
        call, so results never depend on scheduling)."""
        return "#pragma omp for schedule(static)" if self.threads else ""

    def identity(self) -> str:
        """What about the target changes generated or compiled code (part of cache keys)."""
        return "\n".join([self.name, self.template_package, " ".join(self.flags),
                          " ".join(self.libraries), str(self.threads)])


C = Target("c", "C99, one thread; SIMD over nodes")
OPENMP = Target("openmp", "C99 + OpenMP: a team of threads over the nodes, SIMD within",
                flags=("-fopenmp",), threads=True)
TARGETS = {target.name: target for target in (C, OPENMP)}


def select_target(name: str | None = None, *, openmp_available: bool = True) -> Target:
    """The target named (or $MFGEN_TARGET); by default OpenMP where the compiler has it."""
    name = name or os.environ.get("MFGEN_TARGET") or ("openmp" if openmp_available else "c")
    if name not in TARGETS:
        raise MfgenError(f"unknown target '{name}' (MFGEN_TARGET); choose one of "
                         f"{', '.join(TARGETS)}")
    if TARGETS[name].threads and not openmp_available:
        raise MfgenError(f"target '{name}' needs OpenMP, which the C compiler does not "
                         "support; use MFGEN_TARGET=c")
    return TARGETS[name]

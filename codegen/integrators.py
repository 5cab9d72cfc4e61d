"""Integrators as data: each is a short explicit Runge-Kutta tableau, expanded by one template.

Semantics are TVB's (tvb.simulator.integrators): coupling is computed once per step and held
for every stage; each stage input x + dt * sum_j a_sj k_j (+ the step's noise increment where
`stage_noise` says so) is clamped to the state boundaries before the model is evaluated on it;
the new state x + dt * sum_j b_j k_j (+ noise) is clamped too. Additive noise: the increment
is g * sqrt(dt) * N(0, 1) with g = sqrt(2 nsig), one sample per step shared by all stages
(TVB's EulerStochastic / HeunStochastic). Adding an integrator is adding an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Tableau:
    name: str
    a: tuple[tuple[Fraction, ...], ...]  # a[s] weights of k_0..k_{s-1} in stage s's input
    b: tuple[Fraction, ...]  # weights of k_s in the new state
    stochastic: bool = False
    stage_noise: tuple[bool, ...] = ()  # whether stage s's input includes the noise increment
    order: int = 1  # deterministic order of accuracy (tested by convergence)
    description: str = ""

    @property
    def stages(self) -> int:
        return len(self.b)


def _f(*values: str | int) -> tuple[Fraction, ...]:
    return tuple(Fraction(v) for v in values)


INTEGRATORS: dict[str, Tableau] = {
    t.name: t for t in [
        Tableau("euler", ((),), _f(1), order=1, description="TVB EulerDeterministic"),
        Tableau("heun", ((), _f(1)), _f("1/2", "1/2"), order=2,
                description="TVB HeunDeterministic (predictor clamped)"),
        Tableau("rk4", ((), _f("1/2"), _f(0, "1/2"), _f(0, 0, 1)), _f("1/6", "1/3", "1/3", "1/6"),
                order=4, description="TVB RungeKutta4thOrderDeterministic"),
        Tableau("euler_maruyama", ((),), _f(1), stochastic=True, stage_noise=(False,),
                order=1, description="TVB EulerStochastic, additive noise"),
        Tableau("heun_stochastic", ((), _f(1)), _f("1/2", "1/2"), stochastic=True,
                stage_noise=(False, True), order=2,
                description="TVB HeunStochastic: the same noise sample in predictor and corrector"),
    ]
}

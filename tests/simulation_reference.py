"""A NumPy reference of the simulation loop, written from TVB's semantics, short enough to
trust (vbjax-style): it shares nothing with the generated C except the model's NumPy `dfun`.

Per step: coupling from the delayed history (held for all stages), the integrator's stages
with clamping after each stage input and after the update, then monitors.
"""

from __future__ import annotations

import numpy as np

TABLEAUX = {  # a (stage inputs), b (update), stochastic, noise in stage s
    "euler": ([[]], [1.0], False, [False]),
    "heun": ([[], [1.0]], [0.5, 0.5], False, [False, False]),
    "rk4": ([[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], False,
            [False] * 4),
    "euler_maruyama": ([[]], [1.0], True, [False]),
    "heun_stochastic": ([[], [1.0]], [0.5, 0.5], True, [False, True]),
}


def clamp(x, lower, upper):
    return np.minimum(np.maximum(x, lower[:, None]), upper[:, None])


def simulate_reference(dfun, state, weights, delays, cvar, n_steps, dt, integrator,
                       lower, upper, coupling_a=1.0, coupling_b=0.0, nsig=None, normals=None):
    """Returns the state after every step: (n_steps, n_state, n_nodes).

    dfun(x, c) -> dx; weights[i, j] from j to i; delays[i, j] in steps; linear coupling
    c_k,i = a * sum_j w_ij x_cvar[k],j(t - d_ij) + b; normals: (n_steps, n_state, n_nodes).
    """
    a_rows, b, stochastic, stage_noise = TABLEAUX[integrator]
    n_state, n = state.shape
    horizon = int(delays.max()) + 1
    history = np.repeat(state[cvar][None], horizon, axis=0)  # constant initial history
    x = state.copy()
    trace = np.empty((n_steps, n_state, n))
    gain = np.sqrt(2 * np.asarray(nsig))[:, None] if stochastic else None
    cols = np.arange(n)
    for t in range(n_steps):
        history[t % horizon] = x[cvar]
        slots = (t - delays) % horizon  # (i, j)
        delayed = history[slots, :, cols[None, :]]  # (i, j, k)
        c = coupling_a * np.einsum("ij,ijk->ki", weights, delayed) + coupling_b
        noise = gain * np.sqrt(dt) * normals[t] if stochastic else 0.0
        k = [dfun(x, c)]
        for s in range(1, len(b)):
            stage = x + dt * sum(a * k[j] for j, a in enumerate(a_rows[s]))
            if stage_noise[s]:
                stage = stage + noise
            k.append(dfun(clamp(stage, lower, upper), c))
        x = x + dt * sum(w * k[j] for j, w in enumerate(b))
        if stochastic:
            x = x + noise
        x = clamp(x, lower, upper)
        trace[t] = x
    return trace

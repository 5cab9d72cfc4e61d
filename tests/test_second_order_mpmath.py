"""The second-order models' transfer functions: their symbolic derivatives (as the spec's NumPy
reference evaluates them) vs mpmath.diff of a 40-digit transcription, for seeds 5, 6 and 7.

Split from test_second_order.py: `make test` hands whole modules to its workers, and these
probes (SymPy on three probe specs, mpmath per node) keep one worker busy while the other
compiles the second-order kernels there."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import mfgen

# -- transfer-function derivatives vs mpmath -------------------------------------------------
mpf = mpmath.mpf


def _regime(fe, fi, W, E_L, g_L, p):
    """mu_V, sigma_V, tau_V, mu_G of the AdEx transfer function (Zerlaut 2018), in mpmath."""
    mu_Ge, mu_Gi = p["Q_e"] * p["tau_e"] * fe, p["Q_i"] * p["tau_i"] * fi
    mu_G = g_L + mu_Ge + mu_Gi
    T_m = p["C_m"] / mu_G
    mu_V = (mu_Ge * p["E_e"] + mu_Gi * p["E_i"] + g_L * E_L - W) / mu_G
    a = fe * (p["Q_e"] / mu_G * (p["E_e"] - mu_V) * p["tau_e"]) ** 2
    b = fi * (p["Q_i"] / mu_G * (p["E_i"] - mu_V) * p["tau_i"]) ** 2
    sigma_V = mpmath.sqrt(a / (2 * (p["tau_e"] + T_m)) + b / (2 * (p["tau_i"] + T_m)))
    tau_V = (a + b) / (a / (p["tau_e"] + T_m) + b / (p["tau_i"] + T_m))
    return mu_V, sigma_V, tau_V, mu_G


def _rate(mu_V, sigma_V, tau_V, g_L, P, p, log_term=None):
    V, S, T = (mu_V + 60) / 10, (sigma_V - 4) / 6, tau_V * g_L / p["C_m"] - mpf(0.5)
    terms = [1, V, S, T, V * V, S * S, T * T, V * S, V * T, S * T]
    if log_term is not None:  # variant A: P[4] log(mu_G/g_l) after the linear terms
        terms.insert(4, log_term)
    V_thr = 1000 * sum(c * t for c, t in zip(P, terms))
    return mpmath.erfc((V_thr - mu_V) / (mpmath.sqrt(2) * sigma_V)) / (2 * tau_V)


def tf_variant_a(nu_e, nu_i, P, p):
    scale = p["p_connect"] * p["N_tot"]
    fe, fi = (nu_e + mpf(1e-6)) * (1 - p["g"]) * scale, (nu_i + mpf(1e-6)) * p["g"] * scale
    mu_V, sigma_V, tau_V, mu_G = _regime(fe, fi, 0, p["E_L"], p["g_l"], p)
    return _rate(mu_V, sigma_V, tau_V, p["g_l"], P, p, mpmath.log(mu_G / p["g_l"]))


def tf_variant_b(nu_e, nu_i, W, P, E_L, p):
    scale = p["p_connect"] * p["N_tot"]
    fe, fi = (nu_e + mpf(1e-6)) * (1 - p["g"]) * scale, (nu_i + mpf(1e-6)) * p["g"] * scale
    mu_V, sigma_V, tau_V, _ = _regime(fe, fi, W, E_L, p["g_L"], p)
    return _rate(mu_V, sigma_V, tau_V, p["g_L"], P, p)


def tf_variant_c(nu_e, nu_i, nu_e_ext, nu_i_ext, W, P, E_L, p):
    fe = (nu_e + mpf(1e-6)) * (1 - p["g"]) * p["p_connect_e"] * p["N_tot"] \
        + nu_e_ext * p["K_ext_e"]
    fi = (nu_i + mpf(1e-6)) * p["g"] * p["p_connect_i"] * p["N_tot"] + nu_i_ext * p["K_ext_i"]
    mu_V, sigma_V, tau_V, _ = _regime(fe, fi, W, E_L, p["g_L"], p)
    return _rate(mu_V, sigma_V, tau_V, p["g_L"], P, p)


# Per model: its TF's arguments for the excitatory and the inhibitory population, as the spec
# writes them, and the mpmath transcription of that TF variant.
TF_CALLS = {
    "zerlaut_adaptation_second_order": (
        "E_input_excitatory, I_input_excitatory, W, P_e, E_L_e",
        "E_input_inhibitory, I_input_inhibitory, W, P_i, E_L_i", tf_variant_b),
    "tvb_adex_second_order": (
        "E, I, X_e, Y_e, W_e, P_e, E_L_e", "E, I, X_i, Y_i, W_i, P_i, E_L_i", tf_variant_c),
    "zerlaut_2018_second_order": ("fe_e, fi_e, P_e", "fe_i, fi_i, P_i", tf_variant_a),
}
# (name, expression prefix, mpmath.diff orders in (nu_e, nu_i)); both mixed orders are probed.
PROBED = [("F", "TF", (0, 0)), ("d_e", "diff(TF, nu_e)", (1, 0)),
          ("d_i", "diff(TF, nu_i)", (0, 1)), ("d_ee", "diff(TF, nu_e, nu_e)", (2, 0)),
          ("d_ei", "diff(TF, nu_e, nu_i)", (1, 1)), ("d_ie", "diff(TF, nu_i, nu_e)", (1, 1)),
          ("d_ii", "diff(TF, nu_i, nu_i)", (0, 2))]


def probe_spec(spec: str) -> str:
    """A spec extending `spec` with one extra state per probe: each population's scalar TF
    inputs ("probe_in_e_0", ...), and the TF's value and derivatives there ("probe_d_ee_e",
    ...), as those states' 'derivatives'."""
    lines = []
    for population, call in zip("ei", TF_CALLS[spec][:2]):
        scalars = [a.strip() for a in call.split(",") if not a.strip().startswith("P_")]
        lines += [f"probe_in_{population}_{k}: {arg}" for k, arg in enumerate(scalars)]
        lines += [f"probe_{name}_{population}: {prefix}({call})" for name, prefix, _ in PROBED]
    states = "\n".join(f"  {line.split(':')[0]}: {{range: [0.0, 0.0]}}" for line in lines)
    body = "\n".join(f"  {line}" for line in lines)
    return (f"name: probe_{spec}\nextends: {spec}\n"
            f"state_variables:\n{states}\nderivatives:\n{body}\n")


@pytest.mark.parametrize("spec", TF_CALLS)
def test_transfer_function_derivatives_match_mpmath(spec, write_spec, rng):
    # The spec's derivatives as its NumPy reference evaluates them (no compiling: the kernel's
    # derivatives are compared with the reference in test_compiled_derivative_terms...),
    # against mpmath.diff of a 40-digit transcription of the TF at the same inputs.
    model = mfgen.load(write_spec(probe_spec(spec), f"probe_{spec}.yaml"), backend="numpy")
    n = 12
    state = np.empty((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = model.states[name].check_range
        state[k] = rng.uniform(max(low, 1e-3) if name in ("E", "I") else low, high, n)
    coupling = rng.uniform(0.0, 0.01, (len(model.coupling_variables), n))
    parameters = {name: 0.3e-3 for name in model.parameters if name.startswith("external_input")}
    if "weight_noise" in model.parameters:
        parameters["weight_noise"] = 1e-4
    values = model.dfun(state, coupling, 0.05, **parameters)
    row = {name: values[k] for k, name in enumerate(model.state_variables)}
    p = {name: mpf(float(v)) if np.ndim(v) == 0 else [mpf(float(c)) for c in v]
         for name, v in {**model.parameters, **parameters}.items()}
    tf = TF_CALLS[spec][2]
    for population, call in zip("ei", TF_CALLS[spec][:2]):
        call_args = [a.strip() for a in call.split(",")]
        vector = call_args.index(f"P_{population}")  # the one vector argument
        n_scalars = len(call_args) - 1
        for node in range(n):
            args = [mpf(float(row[f"probe_in_{population}_{k}"][node]))
                    for k in range(n_scalars)]
            args.insert(vector, p[call_args[vector]])

            def f(nu_e, nu_i, args=args):
                return tf(nu_e, nu_i, *args[2:], p)

            for name, _, order in PROBED:
                with mpmath.workdps(40):
                    exact = mpmath.diff(f, (args[0], args[1]), order)
                value = row[f"probe_{name}_{population}"][node]
                assert abs(value - exact) <= 1e-9 * abs(exact), (name, population, node)

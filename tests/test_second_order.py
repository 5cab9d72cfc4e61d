"""The second-order models (seeds 5, 6, 7 and TVB's): compiled kernel vs the spec's NumPy
reference, the transfer functions' symbolic derivatives vs mpmath, the models vs hand-written
ports of the seed `dfun`s (tests/seed_ports.py, which use the seeds' finite differences), and
the derivative machinery itself on a function with a closed form."""

from __future__ import annotations

import re

import mpmath
import numpy as np
import pytest
import seed_ports

import mfgen
from mfgen.runtime.checking import check_model, random_inputs, relative_error

SECOND_ORDER_SEEDS = {
    "zerlaut_adaptation_second_order": 5,
    "tvb_adex_second_order": 6,
    "zerlaut_2018_second_order": 7,
}
SECOND_ORDER_SPECS = [*SECOND_ORDER_SEEDS, "tvb_zerlaut_adaptation_second_order"]
COVARIANCES = ("C_ee", "C_ei", "C_ii")


@pytest.mark.parametrize("spec", SECOND_ORDER_SPECS)
def test_compiled_matches_reference_at_random_states_and_parameters(spec):
    # 1000 points with the defaults, 1000 with per-node parameters drawn from their ranges,
    # states from their check ranges. Error per state row: |c - r| / max(|r|, 1e-2 max|r_row|):
    # rates are written (F - E)/T, which cancels near a fixed point, where the rounding error
    # is that of the terms (the row's scale), not of their tiny difference.
    report = check_model(mfgen.load(spec), points=2000, seed=5)
    assert report.nonfinite_mismatch == 0
    assert report.worst <= 1e-12, report.max_error


@pytest.mark.parametrize("spec", SECOND_ORDER_SPECS)
def test_compiled_derivative_terms_match_reference(spec, rng):
    # In the check ranges the derivative terms are small parts of each row (C/1e6 * d2F in
    # dE/dt). Covariances of +-1e6 make d2F dominate dE/dt and dI/dt and dF the covariance
    # rows, so this compares the kernel's derivatives themselves. Sums of second-derivative
    # terms lose a few more digits than the rates (measured <= 1.3e-11 over 40 000 points);
    # rates below 1e-3 kHz are left out: there d2F/dI2 is ill-conditioned in both (~1e-9).
    model = mfgen.load(spec)
    for parameters in ({}, None):
        state, coupling, lc, random_parameters = random_inputs(model, 1000, rng)
        for name in ("E", "I"):
            state[model.state_variables.index(name)] = rng.uniform(
                1e-3, model.states[name].check_range[1], 1000)
        for name in COVARIANCES:
            state[model.state_variables.index(name)] = rng.uniform(-1e6, 1e6, 1000)
        parameters = random_parameters if parameters is None else parameters
        computed = model.dfun(state, coupling, lc, **parameters)
        expected = model.reference.dfun(state, coupling, lc, **parameters)
        assert np.array_equal(np.isfinite(computed), np.isfinite(expected))
        assert relative_error(computed, expected, ignore_nonfinite=True).max() <= 1e-10


@pytest.mark.parametrize("spec, seed", SECOND_ORDER_SEEDS.items())
def test_defaults_states_and_coupling_are_the_seed_class_ones(spec, seed):
    model = mfgen.load(spec)
    assert list(model.state_variables) == getattr(seed_ports, f"SEED{seed}_STATES")
    defaults = getattr(seed_ports, f"SEED{seed}_DEFAULTS")
    assert set(model.parameters) == set(defaults)
    for name, value in defaults.items():
        np.testing.assert_array_equal(model.parameters[name], value, err_msg=name)
    # TVB's cvar: every state in the 2018 classes, E only in TVB-AdEx.
    expected_cvar = [0] if seed == 6 else list(range(model.n_states))
    assert list(model.cvar) == expected_cvar


def seed_state_sample(model, seed: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """States in the seed class's ranges; check ranges where the class's range is [0, 0]."""
    ranges = getattr(seed_ports, f"SEED{seed}_STATE_RANGES")
    state = np.empty((model.n_states, n))
    for k, name in enumerate(model.state_variables):
        low, high = ranges[name]
        if low == high:
            low, high = model.states[name].check_range
        state[k] = rng.uniform(low, high, n)
    return state


@pytest.mark.parametrize("spec, seed", SECOND_ORDER_SEEDS.items())
def test_exact_derivatives_agree_with_the_seeds_finite_differences(spec, seed, rng):
    # The seeds differentiate with central differences (h = 1e-7 kHz); docs/provenance.md
    # gives their error: up to ~1e-5 relative (first) and ~6e-5 (second). Those
    # terms enter dE/dt scaled by C/1e6 and the covariance rows by C/1e3; the W rows have none.
    model = mfgen.load(spec)
    port = getattr(seed_ports, f"seed{seed}_dfun")
    n = 1000
    state = seed_state_sample(model, seed, n, rng)
    coupling = rng.uniform(0.0, 0.01, (len(model.coupling_variables), n))
    drives = {name: 0.315e-3 for name in model.parameters if name.startswith("external_input")}
    noise = {"weight_noise": 1e-4} if seed == 6 else {}
    for lc, parameters in ((0.0, noise), (0.05, {**noise, **drives})):
        computed = model.dfun(state, coupling, lc, **parameters)
        expected = port(state, coupling, lc, **parameters)
        assert np.isfinite(expected).all()
        error = relative_error(computed, expected, ignore_nonfinite=True).max(axis=1)
        for name, worst in zip(model.state_variables, error):
            tolerance = 1e-7 if name in ("E", "I") else 1e-4 if name in COVARIANCES else 1e-12
            assert worst <= tolerance, (name, worst)


def test_seed6_kernel_evaluates_erfc_twice_per_node():
    # Every derivative of F_e and F_i reuses the value's erfc (and its exp); TVB's finite
    # differences evaluate the transfer function 34 times per node.
    model = mfgen.load("tvb_adex_second_order")
    assert model.metadata["stats"]["calls_per_node"]["erfc"] <= 2
    kernel = (mfgen.build("tvb_adex_second_order").module_dir / "kernel.c").read_text()
    uniform = kernel[kernel.index("void dfun_uniform("):kernel.index("void dfun_per_node(")]
    node_loop = uniform[uniform.index("for (int64_t _i"):]
    assert 1 <= len(re.findall(r"\berfc\(", node_loop)) <= 2


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


# -- the derivative machinery on a function with a closed form -------------------------------
DERIVATIVE_SPEC = """
name: derivative_probe
parameters:
  k: {default: 0.7}
functions:
  F:
    args: [x, y, k]
    derived:
      e: exp(k * x)
    return: e * sin(y) + x**3 * y**2
  F_fd:
    args: [x, y, k]
    derivatives: {method: finite_difference, step: 1.0e-4}
    return: F(x, y, k)
state_variables:
  x: {range: [-1.0, 1.0]}
  y: {range: [-1.0, 1.0]}
  fx: {range: [0.0, 0.0]}
  fy: {range: [0.0, 0.0]}
  fxx: {range: [0.0, 0.0]}
  fxy: {range: [0.0, 0.0]}
  fyx: {range: [0.0, 0.0]}
  fyy: {range: [0.0, 0.0]}
  fx_diagonal: {range: [0.0, 0.0]}
  fd_fx: {range: [0.0, 0.0]}
  fd_fy: {range: [0.0, 0.0]}
  fd_fxx: {range: [0.0, 0.0]}
  fd_fxy: {range: [0.0, 0.0]}
  fd_fyy: {range: [0.0, 0.0]}
derivatives:
  x: 0
  y: 0
  fx: diff(F, x)(x, y, k)
  fy: diff(F, y)(x, y, k)
  fxx: diff(F, x, x)(x, y, k)
  fxy: diff(F, x, y)(x, y, k)
  fyx: diff(F, y, x)(x, y, k)
  fyy: diff(F, y, y)(x, y, k)
  fx_diagonal: diff(F, x)(x, x, k)   # in the first argument, the second held at the same x
  fd_fx: diff(F_fd, x)(x, y, k)
  fd_fy: diff(F_fd, y)(x, y, k)
  fd_fxx: diff(F_fd, x, x)(x, y, k)
  fd_fxy: diff(F_fd, x, y)(x, y, k)
  fd_fyy: diff(F_fd, y, y)(x, y, k)
"""


def test_partial_derivatives_exact_and_by_central_differences(write_spec, rng):
    model = mfgen.load(write_spec(DERIVATIVE_SPEC, "derivative_probe.yaml"))
    x, y = rng.uniform(-1, 1, (2, 50))
    k = 0.7
    e = np.exp(k * x)
    expected = {
        "fx": k * e * np.sin(y) + 3 * x**2 * y**2,
        "fy": e * np.cos(y) + 2 * x**3 * y,
        "fxx": k * k * e * np.sin(y) + 6 * x * y**2,
        "fxy": k * e * np.cos(y) + 6 * x**2 * y,
        "fyy": -e * np.sin(y) + 2 * x**3,
        "fx_diagonal": k * e * np.sin(x) + 3 * x**4,
    }
    expected["fyx"] = expected["fxy"]
    state = np.zeros((model.n_states, x.size))
    state[0], state[1] = x, y
    for values in (model.dfun(state, np.zeros((0, x.size))),
                   model.reference.dfun(state, np.zeros((0, x.size)))):
        row = dict(zip(model.state_variables, values))
        for name, exact in expected.items():
            np.testing.assert_allclose(row[name], exact, rtol=1e-13, atol=1e-13, err_msg=name)
            if f"fd_{name}" in row:  # truncation h^2 |F'''|/6 ~ 1e-8, round-off eps/h^2 ~ 2e-8
                np.testing.assert_allclose(row[f"fd_{name}"], exact, rtol=0, atol=1e-7,
                                           err_msg=name)

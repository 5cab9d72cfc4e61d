"""Hand-written NumPy ports of the seven seed ``dfun`` methods: the test oracle for mfgen.

Written by hand from the seven upstream seed ``dfun`` methods (docs/provenance.md names them)
and their equations. Nothing here is imported from or generated
by mfgen, so generated kernels can be checked against it independently.

The seed arithmetic is kept as written, quirks included: the shared W of seeds 1/5, the drive
on the inhibitory argument in seeds 4/7, the clamps of seeds 2/6, the 1e3 factor in the finite
differences and the covariance index pattern of seeds 5/6/7. Do not "fix" them here.

Units: rates kHz, time ms, voltage mV, conductance nS, capacitance pF, current pA.
Local names follow the seeds, except that the inhibitory rate ``I`` is spelt ``I_`` (lint
forbids the name ``I``).

``seedN_dfun(state, coupling, local_coupling=0.0, **params)``: ``state`` has shape
(n_state, n_nodes), ``coupling`` (n_cvar, n_nodes) and only ``coupling[0]`` is read. ``params``
override ``SEEDN_DEFAULTS`` (scalars or per-node arrays of shape (n_nodes,); ``P_e``/``P_i`` are
1-D coefficient arrays). Unknown parameter names raise TypeError. Returns d(state)/dt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array: TypeAlias = NDArray[np.float64]
TwoRateTF: TypeAlias = Callable[[Array, Array], Array]

# math.erfc element-wise: NumPy-only, and CPython's math.erfc is the C library's erfc, so a
# scalar C kernel sees the same values (scipy.special.erfc differs in the last bits, which
# the second-difference stencils amplify to ~1e-9 relative in the dfuns).
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def erfc(x: ArrayLike) -> Array:
    """Element-wise complementary error function."""
    return _erfc(x)


def _merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated with overrides; list-like values become arrays."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise TypeError(f"unknown parameter(s): {unknown}")
    merged = {**defaults, **overrides}
    return {k: (v if v is None else np.asarray(v)) for k, v in merged.items()}


def _coefficients(P: ArrayLike, n: int) -> Array:
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (n,):
        raise ValueError(f"expected {n} threshold coefficients, got shape {P.shape}")
    return P


# Normalisation of the threshold polynomial (mV, mV, dimensionless), Zerlaut 2018 p.48.
MU_V0, D_MU_V0 = -60.0, 10.0
S_V0, D_S_V0 = 4.0, 6.0
T_VN0, D_T_VN0 = 0.5, 1.0


def _guarded_tau_v(num: Array, den: Array) -> Array:
    # Variants A and B: np.divide(num, den, out=ones, where=den != 0).
    tau_v = np.ones_like(num, dtype=np.float64)
    np.divide(num, den, out=tau_v, where=den != 0.0)
    return tau_v


# --------------------------------------------------------------------------------------------
# Transfer-function variant A (seeds 4, 7): YAdEX_TVB transfer_function.py blob bdb3edba.
# --------------------------------------------------------------------------------------------

def fluct_regime_variant_a(
    fe: ArrayLike, fi: ArrayLike, params: Mapping[str, Any]
) -> tuple[Array, Array, Array, Array]:
    """(mu_V, sigma_V, mu_Gn, T_V) of variant A; no W; uses ``g_l`` and a shared ``E_L``."""
    p = params
    Q_e, tau_e, E_e = p["Q_e"], p["tau_e"], p["E_e"]
    Q_i, tau_i, E_i = p["Q_i"], p["tau_i"], p["E_i"]
    g_l, C_m, E_L = p["g_l"], p["C_m"], p["E_L"]
    f_e = (np.asarray(fe) + 1e-6) * (1. - p["g"]) * p["p_connect"] * p["N_tot"]
    f_i = (np.asarray(fi) + 1e-6) * p["g"] * p["p_connect"] * p["N_tot"]
    mu_Ge, mu_Gi = Q_e * tau_e * f_e, Q_i * tau_i * f_i
    mu_G = g_l + mu_Ge + mu_Gi
    mu_Gn, T_m = mu_G / g_l, C_m / mu_G
    mu_V = (mu_Ge * E_e + mu_Gi * E_i + g_l * E_L) / mu_G
    U_e, U_i = Q_e / mu_G * (E_e - mu_V), Q_i / mu_G * (E_i - mu_V)
    # Variant A writes /2./(tau+T_m) (B and C write /(2.*(tau+T_m))); the upstream
    # "Error in the firing rate" print for negative variance is not reproduced.
    sigma_V = np.sqrt(f_e * (U_e * tau_e)**2 / 2. / (tau_e + T_m)
                      + f_i * (U_i * tau_i)**2 / 2. / (tau_i + T_m))
    num = f_e * (U_e * tau_e)**2 + f_i * (U_i * tau_i)**2
    den = f_e * (U_e * tau_e)**2 / (tau_e + T_m) + f_i * (U_i * tau_i)**2 / (tau_i + T_m)
    return mu_V, sigma_V, mu_Gn, _guarded_tau_v(num, den)


def tf_variant_a(fe: ArrayLike, fi: ArrayLike, P: ArrayLike | None,
                 params: Mapping[str, Any]) -> Array:
    """Variant A transfer function (kHz): 11 coefficients incl. ``P[4]*log(mu_G/g_l)``.

    ``fe``/``fi`` are the total presynaptic rates (kHz); ``params`` supplies Q_e, tau_e, E_e,
    Q_i, tau_i, E_i, g_l, C_m, E_L, N_tot, p_connect, g (e.g. ``SEED4_DEFAULTS``).
    ``P`` None or empty means ``[-45e-3, 0, ..., 0]``, as upstream.
    """
    if P is None or len(P) == 0:  # type: ignore[arg-type]
        P = [-45e-3] + [0.0] * 10
    P = _coefficients(P, 11)
    mu_V, sigma_V, mu_Gn, T_V = fluct_regime_variant_a(fe, fi, params)
    V = (mu_V - MU_V0) / D_MU_V0
    S = (sigma_V - S_V0) / D_S_V0
    T = (T_V * params["g_l"] / params["C_m"] - T_VN0) / D_T_VN0
    V_thre = (P[0] + P[1] * V + P[2] * S + P[3] * T + P[4] * np.log(mu_Gn)
              + P[5] * V**2 + P[6] * S**2 + P[7] * T**2
              + P[8] * V * S + P[9] * V * T + P[10] * S * T) * 1e3  # V -> mV
    return erfc((V_thre - mu_V) / np.sqrt(2) / sigma_V) * 0.5 / T_V


# --------------------------------------------------------------------------------------------
# Variant B (seeds 1, 5): YAdEX_TVB tvb_model/Zerlaut.py @055c78bf.
# --------------------------------------------------------------------------------------------

def fluct_regime_variant_b(fe: ArrayLike, fi: ArrayLike, W: ArrayLike, E_L: ArrayLike,
                           params: Mapping[str, Any]) -> tuple[Array, Array, Array]:
    """(mu_V, sigma_V, T_V) of variant B: single p_connect, adaptation W, guarded T_V."""
    p = params
    Q_e, tau_e, E_e = p["Q_e"], p["tau_e"], p["E_e"]
    Q_i, tau_i, E_i = p["Q_i"], p["tau_i"], p["E_i"]
    g_L, C_m = p["g_L"], p["C_m"]
    f_e = (np.asarray(fe) + 1e-6) * (1. - p["g"]) * p["p_connect"] * p["N_tot"]
    f_i = (np.asarray(fi) + 1e-6) * p["g"] * p["p_connect"] * p["N_tot"]
    mu_Ge, mu_Gi = Q_e * tau_e * f_e, Q_i * tau_i * f_i
    mu_G = g_L + mu_Ge + mu_Gi
    T_m = C_m / mu_G
    mu_V = (mu_Ge * E_e + mu_Gi * E_i + g_L * E_L - W) / mu_G
    U_e, U_i = Q_e / mu_G * (E_e - mu_V), Q_i / mu_G * (E_i - mu_V)
    sigma_V = np.sqrt(f_e * (U_e * tau_e)**2 / (2. * (tau_e + T_m))
                      + f_i * (U_i * tau_i)**2 / (2. * (tau_i + T_m)))
    num = f_e * (U_e * tau_e)**2 + f_i * (U_i * tau_i)**2
    den = f_e * (U_e * tau_e)**2 / (tau_e + T_m) + f_i * (U_i * tau_i)**2 / (tau_i + T_m)
    return mu_V, sigma_V, _guarded_tau_v(num, den)


def _threshold_10(mu_V: Array, sigma_V: Array, T_VN: Array, P: Array) -> Array:
    # 10-coefficient polynomial of variants B and C (no log term), in volts.
    V = (mu_V - MU_V0) / D_MU_V0
    S = (sigma_V - S_V0) / D_S_V0
    T = (T_VN - T_VN0) / D_T_VN0
    return (P[0] + P[1] * V + P[2] * S + P[3] * T + P[4] * V**2 + P[5] * S**2 + P[6] * T**2
            + P[7] * V * S + P[8] * V * T + P[9] * S * T)


def _firing_rate(mu_V: Array, sigma_V: Array, T_V: Array, V_thre: Array) -> Array:
    # B/C form: erfc((V_thr - mu_V) / (sqrt(2) sigma_V)) / (2 T_V).
    return erfc((V_thre - mu_V) / (np.sqrt(2) * sigma_V)) / (2 * T_V)


def tf_variant_b(fe: ArrayLike, fi: ArrayLike, W: ArrayLike, P: ArrayLike, E_L: ArrayLike,
                 params: Mapping[str, Any]) -> Array:
    """Variant B transfer function (kHz): 10 coefficients, adaptation W, guarded T_V.

    ``params`` supplies Q_e, tau_e, E_e, Q_i, tau_i, E_i, g_L, C_m, N_tot, p_connect, g
    (e.g. ``SEED5_DEFAULTS``); ``P``/``E_L`` are the population's (P_e/E_L_e or P_i/E_L_i).
    """
    P = _coefficients(P, 10)
    mu_V, sigma_V, T_V = fluct_regime_variant_b(fe, fi, W, E_L, params)
    V_thre = _threshold_10(mu_V, sigma_V, T_V * params["g_L"] / params["C_m"], P) * 1e3
    return _firing_rate(mu_V, sigma_V, T_V, V_thre)


# --------------------------------------------------------------------------------------------
# Variant C (seeds 2, 6): YAdEX_TVB tvb_model_reference/src/Zerlaut.py @86393869.
# --------------------------------------------------------------------------------------------

def fluct_regime_variant_c(fe: ArrayLike, fi: ArrayLike, fe_ext: ArrayLike, fi_ext: ArrayLike,
                           W: ArrayLike, E_L: ArrayLike,
                           params: Mapping[str, Any]) -> tuple[Array, Array, Array]:
    """(mu_V, sigma_V, T_V) of variant C: recurrent and external rates apart, T_V unguarded."""
    p = params
    Q_e, tau_e, E_e = p["Q_e"], p["tau_e"], p["E_e"]
    Q_i, tau_i, E_i = p["Q_i"], p["tau_i"], p["E_i"]
    g_L, C_m = p["g_L"], p["C_m"]
    f_e = ((np.asarray(fe) + 1.0e-6) * (1. - p["g"]) * p["p_connect_e"] * p["N_tot"]
           + np.asarray(fe_ext) * p["K_ext_e"])
    f_i = ((np.asarray(fi) + 1.0e-6) * p["g"] * p["p_connect_i"] * p["N_tot"]
           + np.asarray(fi_ext) * p["K_ext_i"])
    mu_Ge, mu_Gi = Q_e * tau_e * f_e, Q_i * tau_i * f_i
    mu_G = g_L + mu_Ge + mu_Gi
    T_m = C_m / mu_G
    mu_V = (mu_Ge * E_e + mu_Gi * E_i + g_L * E_L - W) / mu_G
    U_e, U_i = Q_e / mu_G * (E_e - mu_V), Q_i / mu_G * (E_i - mu_V)
    sigma_V = np.sqrt(f_e * (U_e * tau_e)**2 / (2. * (tau_e + T_m))
                      + f_i * (U_i * tau_i)**2 / (2. * (tau_i + T_m)))
    num = f_e * (U_e * tau_e)**2 + f_i * (U_i * tau_i)**2
    den = f_e * (U_e * tau_e)**2 / (tau_e + T_m) + f_i * (U_i * tau_i)**2 / (tau_i + T_m)
    T_V = num / den  # unguarded (numba-jitted upstream)
    return mu_V, sigma_V, T_V


def tf_variant_c(fe: ArrayLike, fi: ArrayLike, fe_ext: ArrayLike, fi_ext: ArrayLike,
                 W: ArrayLike, P: ArrayLike, E_L: ArrayLike,
                 params: Mapping[str, Any]) -> Array:
    """Variant C transfer function (kHz): TVB-AdEx, 10 coefficients, unguarded T_V.

    ``fe``/``fi`` are the recurrent rates (scaled by (1-g) p_connect_e N_tot and
    g p_connect_i N_tot, with +1e-6), ``fe_ext``/``fi_ext`` the external rates (scaled by
    K_ext_e/K_ext_i). ``params`` supplies Q_e, tau_e, E_e, Q_i, tau_i, E_i, g_L, C_m, N_tot,
    p_connect_e, p_connect_i, g, K_ext_e, K_ext_i (e.g. ``SEED6_DEFAULTS``).
    """
    P = _coefficients(P, 10)
    mu_V, sigma_V, T_V = fluct_regime_variant_c(fe, fi, fe_ext, fi_ext, W, E_L, params)
    V_thre = _threshold_10(mu_V, sigma_V, T_V * params["g_L"] / params["C_m"], P) * 1e3
    return _firing_rate(mu_V, sigma_V, T_V, V_thre)


# --------------------------------------------------------------------------------------------
# Finite-difference stencils of the second-order seeds (5: line 5 `_diff_*`; 6: line 6; 7: the
# `self._diff_*` methods of Zerlaut_model_second_order). `tf(a, b)` is the TF as a function of
# the excitatory (a) and inhibitory (b) rate argument. Note the 1e3 in every divisor.
# --------------------------------------------------------------------------------------------

FD_STEP = 1e-7


def diff_fe(tf: TwoRateTF, fe: Array, fi: Array, df: float = FD_STEP) -> Array:
    """Seed `_diff_fe`: [F(a+h, b) - F(a-h, b)] / (2 h 1e3)."""
    return (tf(fe + df, fi) - tf(fe - df, fi)) / (2 * df * 1e3)


def diff_fi(tf: TwoRateTF, fe: Array, fi: Array, df: float = FD_STEP) -> Array:
    """Seed `_diff_fi`: [F(a, b+h) - F(a, b-h)] / (2 h 1e3)."""
    return (tf(fe, fi + df) - tf(fe, fi - df)) / (2 * df * 1e3)


def diff2_fe_fe(tf: TwoRateTF, fe: Array, fi: Array, centre: Array | None = None,
                df: float = FD_STEP) -> Array:
    """Seed `_diff2_fe_fe*`: [F(a+h, b) - 2 F(a, b) + F(a-h, b)] / (h 1e3)^2.

    Seeds 5/6 use the cached centre value (`_TF_e`/`_TF_i`), seed 7 recomputes it; same value.
    """
    if centre is None:
        centre = tf(fe, fi)
    return (tf(fe + df, fi) - 2 * centre + tf(fe - df, fi)) / ((df * 1e3)**2)


def diff2_fi_fi(tf: TwoRateTF, fe: Array, fi: Array, centre: Array | None = None,
                df: float = FD_STEP) -> Array:
    """Seed `_diff2_fi_fi*`: [F(a, b+h) - 2 F(a, b) + F(a, b-h)] / (h 1e3)^2."""
    if centre is None:
        centre = tf(fe, fi)
    return (tf(fe, fi + df) - 2 * centre + tf(fe, fi - df)) / ((df * 1e3)**2)


def diff2_fi_fe(tf: TwoRateTF, fe: Array, fi: Array, df: float = FD_STEP) -> Array:
    """Seed `_diff2_fi_fe`: nested, [dF/db(a+h, b) - dF/db(a-h, b)] / (2 h 1e3)."""
    return (diff_fi(tf, fe + df, fi, df) - diff_fi(tf, fe - df, fi, df)) / (2 * df * 1e3)


def diff2_fe_fi(tf: TwoRateTF, fe: Array, fi: Array, df: float = FD_STEP) -> Array:
    """Seed `_diff2_fe_fi`: nested, [dF/da(a, b+h) - dF/da(a, b-h)] / (2 h 1e3)."""
    return (diff_fe(tf, fe, fi + df, df) - diff_fe(tf, fe, fi - df, df)) / (2 * df * 1e3)


def _second_order_5_6(tf_e: TwoRateTF, a_e: Array, b_e: Array,
                      tf_i: TwoRateTF, a_i: Array, b_i: Array,
                      moments: tuple[Array, ...], T: Any, N_e: Any,
                      N_i: Any) -> tuple[Array, ...]:
    """Mean and covariance rows shared verbatim by seed lines 5 and 6 (derivative[0..4]).

    ``moments`` is (E, I, C_ee, C_ei, C_ii); (a_e, b_e), (a_i, b_i) are the rate arguments
    of the excitatory and inhibitory TF.
    """
    E, I_, C_ee, C_ei, C_ii = moments
    _TF_e = tf_e(a_e, b_e)
    _TF_i = tf_i(a_i, b_i)
    _diff_fe_TF_e = diff_fe(tf_e, a_e, b_e)
    _diff_fe_TF_i = diff_fe(tf_i, a_i, b_i)
    _diff_fi_TF_e = diff_fi(tf_e, a_e, b_e)
    _diff_fi_TF_i = diff_fi(tf_i, a_i, b_i)
    dE = (_TF_e - E
          + .5 * C_ee * diff2_fe_fe(tf_e, a_e, b_e, _TF_e)
          + .5 * C_ei * diff2_fe_fi(tf_e, a_e, b_e)
          + .5 * C_ei * diff2_fi_fe(tf_e, a_e, b_e)
          + .5 * C_ii * diff2_fi_fi(tf_e, a_e, b_e, _TF_e)) / T
    dI = (_TF_i - I_
          + .5 * C_ee * diff2_fe_fe(tf_i, a_i, b_i, _TF_i)
          + .5 * C_ei * diff2_fe_fi(tf_i, a_i, b_i)
          + .5 * C_ei * diff2_fi_fe(tf_i, a_i, b_i)
          + .5 * C_ii * diff2_fi_fi(tf_i, a_i, b_i, _TF_i)) / T
    # Pitfall reproduced: C_ee uses dF_i/db (not dF_e/db).
    dC_ee = (_TF_e * (1. / T - _TF_e) / N_e + (_TF_e - E)**2 + 2. * C_ee * _diff_fe_TF_e
             + 2. * C_ei * _diff_fi_TF_i - 2. * C_ee) / T
    # Pitfall reproduced: transposed Jacobian (C_ei dF_i/da + C_ei dF_e/db).
    dC_ei = ((_TF_e - E) * (_TF_i - I_) + C_ee * _diff_fe_TF_e + C_ei * _diff_fe_TF_i
             + C_ei * _diff_fi_TF_e + C_ii * _diff_fi_TF_i - 2. * C_ei) / T
    # Pitfall reproduced: C_ii uses dF_e/da (not dF_i/da).
    dC_ii = (_TF_i * (1. / T - _TF_i) / N_i + (_TF_i - I_)**2 + 2. * C_ii * _diff_fi_TF_i
             + 2. * C_ei * _diff_fe_TF_e - 2. * C_ii) / T
    return dE, dI, dC_ee, dC_ei, dC_ii


# --------------------------------------------------------------------------------------------
# Seed 1 (line 1): Zerlaut_adaptation_first_order, 2018 (E, I, W), variant B.
# --------------------------------------------------------------------------------------------

SEED1_STATES = ["E", "I", "W"]
SEED1_STATE_RANGES: dict[str, tuple[float, float]] = {
    "E": (0.0, 0.1), "I": (0.0, 0.1), "W": (0.0, 100.0),
}
SEED1_DEFAULTS: dict[str, Any] = {
    "g_L": 10.0, "E_L_e": -63.0, "E_L_i": -65.0, "C_m": 150.0, "b": 60.0, "tau_w": 500.0,
    "E_e": 0.0, "E_i": -80.0, "Q_e": 1.0, "Q_i": 5.0, "tau_e": 5.0, "tau_i": 5.0,
    "N_tot": 10000, "p_connect": 0.05, "g": 0.2, "T": 5.0,
    "P_e": np.array([-4.98e-02, 5.06e-03, -2.5e-02, 1.4e-03, -4.1e-04,
                     1.05e-02, -3.6e-02, 7.4e-03, 1.2e-03, -4.07e-02]),
    "P_i": np.array([-5.14e-02, 4.0e-03, -8.3e-03, 2.0e-04, -5.0e-04,
                     1.4e-03, -1.46e-02, 4.5e-03, 2.8e-03, -1.53e-02]),
    "external_input_ex_ex": 0.0001, "external_input_ex_in": 0.0,
    "external_input_in_ex": 0.0, "external_input_in_in": 0.0,
}


def seed1_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 1 dfun (line 1)."""
    p = _merge(SEED1_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    E, I_, W = state[0], state[1], state[2]
    c_0 = np.asarray(coupling)[0]
    lc_E = local_coupling * E
    lc_I = local_coupling * I_
    out = np.empty_like(state)
    # Pitfalls reproduced: the one W goes to both TFs; c0 only into the E population.
    out[0] = (tf_variant_b(E + c_0 + lc_E + p["external_input_ex_ex"],
                           I_ + lc_I + p["external_input_ex_in"], W, p["P_e"], p["E_L_e"], p)
              - E) / p["T"]
    out[1] = (tf_variant_b(E + lc_E + p["external_input_in_ex"],
                           I_ + lc_I + p["external_input_in_in"], W, p["P_i"], p["E_L_i"], p)
              - I_) / p["T"]
    out[2] = -W / p["tau_w"] + p["b"] * E  # no subthreshold a-term
    return out


# --------------------------------------------------------------------------------------------
# Seed 2 (line 2): TVB-AdEx Zerlaut_adaptation_first_order (E, I, W_e, W_i, noise), variant C.
# --------------------------------------------------------------------------------------------

SEED2_STATES = ["E", "I", "W_e", "W_i", "noise"]
# Upstream ranges are all [0, 0] (tvb-root HEAD: E, I [1e-3, 0.25], W_e [0, 200]).
SEED2_STATE_RANGES: dict[str, tuple[float, float]] = {name: (0.0, 0.0) for name in SEED2_STATES}
SEED2_DEFAULTS: dict[str, Any] = {
    "g_L": 10.0, "E_L_e": -65.0, "E_L_i": -65.0, "C_m": 200.0,
    "b_e": 60.0, "a_e": 4.0, "b_i": 0.0, "a_i": 0.0, "tau_w_e": 500.0, "tau_w_i": 1.0,
    "E_e": 0.0, "E_i": -80.0, "Q_e": 1.5, "Q_i": 5.0, "tau_e": 5.0, "tau_i": 5.0,
    "N_tot": 10000, "p_connect_e": 0.05, "p_connect_i": 0.05, "g": 0.2,
    "K_ext_e": 400, "K_ext_i": 0, "T": 20.0,
    "P_e": np.array([-0.04983106, 0.005063550882777035, -0.023470121807314552,
                     0.0022951513725067503, -0.0004105302652029825, 0.010547051343547399,
                     -0.03659252821136933, 0.007437487505797858, 0.001265064721846073,
                     -0.04072161294490446]),
    "P_i": np.array([-0.05149122024209484, 0.004003689190271077, -0.008352013668528155,
                     0.0002414237992765705, -0.0005070645080016026, 0.0014345394104282397,
                     -0.014686689498949967, 0.004502706285435741, 0.0028472190352532454,
                     -0.015357804594594548]),
    "external_input_ex_ex": 0.0, "external_input_ex_in": 0.0,
    "external_input_in_ex": 0.0, "external_input_in_in": 0.0,
    "tau_OU": 5.0, "weight_noise": 10.5,  # upstream default; real runs use ~1e-4
}


def seed2_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 2 dfun (line 2)."""
    p = _merge(SEED2_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    E, I_, W_e, W_i, noise = state[0], state[1], state[2], state[3], state[4]
    c_0 = np.asarray(coupling)[0]
    lc_E = local_coupling * E
    lc_I = local_coupling * I_
    # Clamp before the drives are added, tested with the sign of K_ext_e (K = 0 never clamps).
    Fe_ext = c_0 + lc_E + p["weight_noise"] * noise
    Fe_ext = np.where(Fe_ext * p["K_ext_e"] < 0, 0.0, Fe_ext)
    Fi_ext = lc_I  # never clamped
    ext_e = (Fe_ext + p["external_input_ex_ex"], Fi_ext + p["external_input_ex_in"])
    ext_i = (Fe_ext + p["external_input_in_ex"], Fi_ext + p["external_input_in_in"])
    out = np.empty_like(state)
    out[0] = (tf_variant_c(E, I_, *ext_e, W_e, p["P_e"], p["E_L_e"], p) - E) / p["T"]
    out[1] = (tf_variant_c(E, I_, *ext_i, W_i, p["P_i"], p["E_L_i"], p) - I_) / p["T"]
    # mu_V of each adaptation equation from exactly that population's TF inputs.
    mu_V = fluct_regime_variant_c(E, I_, *ext_e, W_e, p["E_L_e"], p)[0]
    out[2] = -W_e / p["tau_w_e"] + p["b_e"] * E + p["a_e"] * (mu_V - p["E_L_e"]) / p["tau_w_e"]
    mu_V = fluct_regime_variant_c(E, I_, *ext_i, W_i, p["E_L_i"], p)[0]
    out[3] = -W_i / p["tau_w_i"] + p["b_i"] * I_ + p["a_i"] * (mu_V - p["E_L_i"]) / p["tau_w_i"]
    out[4] = -noise / p["tau_OU"]
    return out


# --------------------------------------------------------------------------------------------
# Seed 3 (line 3): tvb-multiscale Generic2dOscillator._numpy_dfun with the V_m override.
# --------------------------------------------------------------------------------------------

SEED3_STATES = ["V", "W"]
SEED3_STATE_RANGES: dict[str, tuple[float, float]] = {"V": (-2.0, 4.0), "W": (-6.0, 6.0)}
SEED3_DEFAULTS: dict[str, Any] = {
    "tau": 1.0, "I": 0.0, "a": -2.0, "b": -10.0, "c": 0.0, "d": 0.02, "e": 3.0, "f": 1.0,
    "g": 0.0, "alpha": 1.0, "beta": 1.0, "gamma": 1.0, "V_m": 0.0,
}


def seed3_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 3 dfun (line 3); the numexpr strings written as NumPy."""
    p = _merge(SEED3_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    # V_m != 0 replaces V (per node) on the right-hand side only; 0 means "not driven".
    V = np.where(p["V_m"] == 0, state[0], p["V_m"])
    W = state[1]
    c_0 = np.asarray(coupling)[0]
    tau, a, b, c, d = p["tau"], p["a"], p["b"], p["c"], p["d"]
    e, f, g = p["e"], p["f"], p["g"]  # e is the parameter, not Euler's number
    alpha, beta, gamma = p["alpha"], p["beta"], p["gamma"]
    lc_0 = local_coupling * V  # uses the overridden V; not scaled by gamma
    out = np.empty_like(state)
    out[0] = d * tau * (alpha * W - f * V**3 + e * V**2 + g * V + gamma * p["I"]
                        + gamma * c_0 + lc_0)
    out[1] = d * (a + b * V + c * V**2 - beta * W) / tau
    return out


# --------------------------------------------------------------------------------------------
# Seed 4 (line 4): Zerlaut_model_first_order with Transfer_Function (E, I), variant A.
# --------------------------------------------------------------------------------------------

SEED4_STATES = ["E", "I"]
# @80a45e2c; the @b6f0a0de version of the same dfun has E, I in [0, 0.2].
SEED4_STATE_RANGES: dict[str, tuple[float, float]] = {"E": (0.00001, 0.1), "I": (0.00001, 0.1)}
SEED4_DEFAULTS: dict[str, Any] = {
    "g_l": 10.0, "E_L": -65.0, "C_m": 150.0,
    # Declared but unused by the dfun: V_th, tau_ref, tau_w, k_a_*, b_*, a_*, nu_ext.
    "V_th": -50.0, "tau_ref": 5.0, "tau_w": 500.0,
    "k_a_e": 2.0, "b_e": 20.0, "a_e": 4.0, "k_a_i": 0.5, "b_i": 0.0, "a_i": 0.0,
    "E_e": 0.0, "E_i": -80.0, "Q_e": 1.0, "Q_i": 5.0, "tau_e": 5.0, "tau_i": 5.0,
    "N_tot": 10000, "p_connect": 0.05, "g": 0.2, "nu_ext": 4.0, "T": 5.0,
    "P_e": np.array([-5.14155819e-02, 6.11046069e-03, 7.44015476e-03, 5.76905434e-05,
                     -1.52902668e-04, 5.63364410e-04, 2.72814525e-04, 5.27870901e-04,
                     -6.77080411e-04, 4.89796440e-04, 1.15073958e-03]),
    "P_i": np.array([-5.46160664e-02, 4.58415750e-03, -1.77303201e-03, 6.64785219e-04,
                     -3.00637490e-04, 3.93520293e-04, -5.14454957e-04, -6.39186948e-06,
                     -1.39021341e-03, -4.85663596e-04, -3.63617754e-04]),
    "external_input": 0.004,
}


def seed4_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 4 dfun (line 4)."""
    p = _merge(SEED4_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    E, I_ = state[0], state[1]
    c_0 = np.asarray(coupling)[0]
    lc_E = local_coupling * E
    lc_I = local_coupling * I_
    ext = p["external_input"]
    out = np.empty_like(state)
    out[0] = (tf_variant_a(E + c_0 + lc_E + ext, I_ + lc_I + ext, p["P_e"], p) - E) / p["T"]
    # Pitfalls reproduced: the I population gets neither c0 nor lc*E, and the drive is added
    # to the inhibitory argument too.
    out[1] = (tf_variant_a(E + ext, I_ + lc_I + ext, p["P_i"], p) - I_) / p["T"]
    return out


# --------------------------------------------------------------------------------------------
# Seed 5 (line 5): Zerlaut_adaptation_second_order, 2018 (E, I, C_ee, C_ei, C_ii, W), variant B.
# --------------------------------------------------------------------------------------------

SEED5_STATES = ["E", "I", "C_ee", "C_ei", "C_ii", "W"]
SEED5_STATE_RANGES: dict[str, tuple[float, float]] = {
    "E": (0.0, 0.1), "I": (0.0, 0.1), "C_ee": (0.0, 0.0), "C_ei": (0.0, 0.0),
    "C_ii": (0.0, 0.0), "W": (0.0, 100.0),
}
SEED5_DEFAULTS: dict[str, Any] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                  for k, v in SEED1_DEFAULTS.items()}


def seed5_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 5 dfun (line 5)."""
    p = _merge(SEED5_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    E, I_, C_ee, C_ei, C_ii, W = (state[k] for k in range(6))
    N_e = p["N_tot"] * (1 - p["g"])
    N_i = p["N_tot"] * p["g"]
    c_0 = np.asarray(coupling)[0]
    lc_E = local_coupling * E
    lc_I = local_coupling * I_
    E_input_excitatory = E + c_0 + lc_E + p["external_input_ex_ex"]
    E_input_inhibitory = E + lc_E + p["external_input_in_ex"]
    I_input_excitatory = I_ + lc_I + p["external_input_ex_in"]
    I_input_inhibitory = I_ + lc_I + p["external_input_in_in"]

    # Same W for both populations (seed 1 pitfall).
    def tf_e(fe: Array, fi: Array) -> Array:
        return tf_variant_b(fe, fi, W, p["P_e"], p["E_L_e"], p)

    def tf_i(fe: Array, fi: Array) -> Array:
        return tf_variant_b(fe, fi, W, p["P_i"], p["E_L_i"], p)

    out = np.empty_like(state)
    out[0:5] = _second_order_5_6(tf_e, E_input_excitatory, I_input_excitatory,
                                 tf_i, E_input_inhibitory, I_input_inhibitory,
                                 (E, I_, C_ee, C_ei, C_ii), p["T"], N_e, N_i)
    out[5] = -W / p["tau_w"] + p["b"] * E
    return out


# --------------------------------------------------------------------------------------------
# Seed 6 (line 6): TVB-AdEx Zerlaut_adaptation_second_order
# (E, I, C_ee, C_ei, C_ii, W_e, W_i, noise), variant C.
# --------------------------------------------------------------------------------------------

SEED6_STATES = ["E", "I", "C_ee", "C_ei", "C_ii", "W_e", "W_i", "noise"]
# Upstream ranges are all [0, 0] (tvb-root HEAD: C_ee, C_ii [0, 5e-4], C_ei [-5e-4, 5e-4]).
SEED6_STATE_RANGES: dict[str, tuple[float, float]] = {name: (0.0, 0.0) for name in SEED6_STATES}
SEED6_DEFAULTS: dict[str, Any] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                  for k, v in SEED2_DEFAULTS.items()}


def seed6_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 6 dfun (line 6)."""
    p = _merge(SEED6_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    E, I_, C_ee, C_ei, C_ii, W_e, W_i, noise = (state[k] for k in range(8))
    N_e = p["N_tot"] * (1 - p["g"])
    N_i = p["N_tot"] * p["g"]
    c_0 = np.asarray(coupling)[0]
    lc_E = local_coupling * E
    lc_I = local_coupling * I_
    # Clamp after the drive is added, without K, per population (differs from seed 2).
    # Both populations get the full c0.
    E_input_excitatory = c_0 + lc_E + p["external_input_ex_ex"] + p["weight_noise"] * noise
    E_input_excitatory = np.where(E_input_excitatory < 0, 0.0, E_input_excitatory)
    E_input_inhibitory = c_0 + lc_E + p["external_input_in_ex"] + p["weight_noise"] * noise
    E_input_inhibitory = np.where(E_input_inhibitory < 0, 0.0, E_input_inhibitory)
    I_input_excitatory = lc_I + p["external_input_ex_in"]  # not clamped
    I_input_inhibitory = lc_I + p["external_input_in_in"]

    # Finite differences perturb only the recurrent arguments (E, I).
    def tf_e(fe: Array, fi: Array) -> Array:
        return tf_variant_c(fe, fi, E_input_excitatory, I_input_excitatory, W_e,
                            p["P_e"], p["E_L_e"], p)

    def tf_i(fe: Array, fi: Array) -> Array:
        return tf_variant_c(fe, fi, E_input_inhibitory, I_input_inhibitory, W_i,
                            p["P_i"], p["E_L_i"], p)

    out = np.empty_like(state)
    out[0:5] = _second_order_5_6(tf_e, E, I_, tf_i, E, I_,
                                 (E, I_, C_ee, C_ei, C_ii), p["T"], N_e, N_i)
    mu_V = fluct_regime_variant_c(E, I_, E_input_excitatory, I_input_excitatory, W_e,
                                  p["E_L_e"], p)[0]
    out[5] = -W_e / p["tau_w_e"] + p["b_e"] * E + p["a_e"] * (mu_V - p["E_L_e"]) / p["tau_w_e"]
    mu_V = fluct_regime_variant_c(E, I_, E_input_inhibitory, I_input_inhibitory, W_i,
                                  p["E_L_i"], p)[0]
    out[6] = -W_i / p["tau_w_i"] + p["b_i"] * I_ + p["a_i"] * (mu_V - p["E_L_i"]) / p["tau_w_i"]
    out[7] = -noise / p["tau_OU"]
    return out


# --------------------------------------------------------------------------------------------
# Seed 7 (line 7): Zerlaut_model_second_order with Transfer_Function
# (E, I, C_ee, C_ei, C_ii), variant A.
# --------------------------------------------------------------------------------------------

SEED7_STATES = ["E", "I", "C_ee", "C_ei", "C_ii"]
SEED7_STATE_RANGES: dict[str, tuple[float, float]] = {
    "E": (0.0, 0.2), "I": (0.0, 0.2), "C_ee": (0.0, 0.0), "C_ei": (0.0, 0.0),
    "C_ii": (0.0, 0.0),
}
SEED7_DEFAULTS: dict[str, Any] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                  for k, v in SEED4_DEFAULTS.items()}
SEED7_DEFAULTS["nu_ext"] = 0.0  # unused; the only default that differs from seed 4


def seed7_dfun(state: ArrayLike, coupling: ArrayLike, local_coupling: ArrayLike = 0.0,
               **params: Any) -> Array:
    """Seed 7 dfun (line 7); term order and 1./T as in the seed."""
    p = _merge(SEED7_DEFAULTS, params)
    state = np.asarray(state, dtype=np.float64)
    E, I_, C_ee, C_ei, C_ii = (state[k] for k in range(5))
    T = p["T"]
    Ne = p["N_tot"] * (1 - p["g"])
    Ni = p["N_tot"] * p["g"]
    c_0 = np.asarray(coupling)[0]
    lc_E = local_coupling * E
    lc_I = local_coupling * I_
    ext = p["external_input"]
    # E population: (E + c0 + lc*E + ext, I + lc*I + ext); I population: no c0, but lc*E
    # (unlike seed 4); the drive is added to both arguments.
    a_e, b_e = E + c_0 + lc_E + ext, I_ + lc_I + ext
    a_i, b_i = E + lc_E + ext, I_ + lc_I + ext

    def tf_e(fe: Array, fi: Array) -> Array:
        return tf_variant_a(fe, fi, p["P_e"], p)

    def tf_i(fe: Array, fi: Array) -> Array:
        return tf_variant_a(fe, fi, p["P_i"], p)

    F_e = tf_e(a_e, b_e)
    F_i = tf_i(a_i, b_i)
    out = np.empty_like(state)
    out[0] = 1. / T * (.5 * C_ee * diff2_fe_fe(tf_e, a_e, b_e)
                       + .5 * C_ei * diff2_fe_fi(tf_e, a_e, b_e)
                       + .5 * C_ei * diff2_fi_fe(tf_e, a_e, b_e)
                       + .5 * C_ii * diff2_fi_fi(tf_e, a_e, b_e)
                       + F_e - E)
    out[1] = 1. / T * (.5 * C_ee * diff2_fe_fe(tf_i, a_i, b_i)
                       + .5 * C_ei * diff2_fe_fi(tf_i, a_i, b_i)
                       + .5 * C_ei * diff2_fi_fe(tf_i, a_i, b_i)
                       + .5 * C_ii * diff2_fi_fi(tf_i, a_i, b_i)
                       + F_i - I_)
    # Same index pattern as seed 5: C_ee uses dF_i/db, C_ii uses dF_e/da, C_ei transposed.
    out[2] = 1. / T * (1. / Ne * F_e * (1. / T - F_e)
                       + (F_e - E)**2
                       + 2. * C_ee * diff_fe(tf_e, a_e, b_e)
                       + 2. * C_ei * diff_fi(tf_i, a_i, b_i)
                       + -2. * C_ee)
    out[3] = 1. / T * ((F_e - E) * (F_i - I_)
                       + C_ee * diff_fe(tf_e, a_e, b_e)
                       + C_ei * diff_fe(tf_i, a_i, b_i)
                       + C_ei * diff_fi(tf_e, a_e, b_e)
                       + C_ii * diff_fi(tf_i, a_i, b_i)
                       + -2. * C_ei)
    out[4] = 1. / T * (1. / Ni * F_i * (1. / T - F_i)
                       + (F_i - I_)**2
                       + 2. * C_ii * diff_fi(tf_i, a_i, b_i)
                       + 2. * C_ei * diff_fe(tf_e, a_e, b_e)
                       + -2. * C_ii)
    return out


# --------------------------------------------------------------------------------------------
# Registry, for parametrised tests.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeedPort:
    """One seed's port: state names and ranges, defaults, dfun, TF variant (None for seed 3)."""

    number: int
    states: list[str]
    state_ranges: dict[str, tuple[float, float]]
    defaults: dict[str, Any]
    dfun: Callable[..., Array]
    tf_variant: str | None


SEED_PORTS: dict[int, SeedPort] = {
    1: SeedPort(1, SEED1_STATES, SEED1_STATE_RANGES, SEED1_DEFAULTS, seed1_dfun, "B"),
    2: SeedPort(2, SEED2_STATES, SEED2_STATE_RANGES, SEED2_DEFAULTS, seed2_dfun, "C"),
    3: SeedPort(3, SEED3_STATES, SEED3_STATE_RANGES, SEED3_DEFAULTS, seed3_dfun, None),
    4: SeedPort(4, SEED4_STATES, SEED4_STATE_RANGES, SEED4_DEFAULTS, seed4_dfun, "A"),
    5: SeedPort(5, SEED5_STATES, SEED5_STATE_RANGES, SEED5_DEFAULTS, seed5_dfun, "B"),
    6: SeedPort(6, SEED6_STATES, SEED6_STATE_RANGES, SEED6_DEFAULTS, seed6_dfun, "C"),
    7: SeedPort(7, SEED7_STATES, SEED7_STATE_RANGES, SEED7_DEFAULTS, seed7_dfun, "A"),
}

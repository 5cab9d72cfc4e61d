"""Shared fixtures. Every test session builds into its own fresh cache directory."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

# Set before mfgen is imported anywhere, so no test reads or writes the user's cache.
os.environ["MFGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="mfgen-test-cache-")

FIRST_ORDER_SPECS = [
    "generic_2d_oscillator",
    "zerlaut_adaptation_first_order",
    "tvb_adex_first_order",
    "zerlaut_2018_first_order",
]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)


@pytest.fixture
def write_spec(tmp_path):
    """Write YAML text to a spec file in tmp_path and return its path."""

    def write(text: str, name: str = "model.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write

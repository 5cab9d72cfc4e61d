"""Shared fixtures. Every test session builds into its own fresh cache directory, removed at
the end of the session. Helpers live in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

# Re-exported for test modules that still import them from here.
from helpers import FIRST_ORDER_SPECS, run_in_processes  # noqa: F401

_CACHE_DIR: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports mfgen: a fresh cache, so no test reads or writes the
    user's cache (an MFGEN_CACHE_DIR already set by a parent run is replaced too)."""
    global _CACHE_DIR
    _CACHE_DIR = tempfile.mkdtemp(prefix="mfgen-test-cache-")
    os.environ["MFGEN_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)


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

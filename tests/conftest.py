"""Shared fixtures. Every test session builds into its own fresh cache directory, removed at
the end of the session. Helpers live in tests/helpers.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

# Re-exported for test modules that still import them from here.
from helpers import FIRST_ORDER_SPECS, run_in_processes  # noqa: F401

_CACHE_DIR: str | None = None
_PREBUILD_PID: int | None = None

# The second-order specs take ~9 s each to build (SymPy's derivatives, a large kernel), most of
# a session's build time. When a session will use them, a background process builds them into
# the session cache, on the other core, while the earlier test files run; the tests then load
# them. Every check still runs: the cache's lock makes a test that gets there first wait for
# the build instead of compiling twice, and a spec that fails to build here is built again by
# its test, which reports the error. MFGEN_TEST_PREBUILD=0 turns it off.
PREBUILD_FOR = {"test_second_order.py", "test_tvb_models.py"}
PREBUILD_AFTER_TESTS = 200
# In the reverse of the order test_second_order.py uses them: a session of that file alone
# meets the builder on one spec at most (both would run SymPy's stages for it).
PREBUILD_SPECS = ["tvb_zerlaut_adaptation_second_order", "zerlaut_2018_second_order",
                  "tvb_adex_second_order", "zerlaut_adaptation_second_order"]
PREBUILD = """
import sys
import warnings
import mfgen
warnings.simplefilter("ignore")
for name in sys.argv[1:]:
    try:
        mfgen.build(name)
    except mfgen.MfgenError:
        pass  # its test builds it again and reports the error
"""


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports mfgen: a fresh cache, so no test reads or writes the
    user's cache (an MFGEN_CACHE_DIR already set by a parent run is replaced too)."""
    global _CACHE_DIR
    _CACHE_DIR = tempfile.mkdtemp(prefix="mfgen-test-cache-")
    os.environ["MFGEN_CACHE_DIR"] = _CACHE_DIR


def pytest_collection_finish(session: pytest.Session) -> None:
    global _PREBUILD_PID
    if os.environ.get("MFGEN_TEST_PREBUILD") == "0":
        return
    first_use = next((index for index, item in enumerate(session.items)
                      if item.path.name in PREBUILD_FOR), None)
    # Only when enough tests run before the first that needs them for the builds to finish
    # meanwhile: in a short session the builder would race the tests (SymPy's stages run
    # before the cache's lock, so a race repeats them) and cost more than it saves.
    if first_use is not None and first_use >= PREBUILD_AFTER_TESTS:
        # Started through sh so that it is not a child of this process: tests check that a
        # build leaves no child process behind.
        launch = ('exe="$1"; code="$2"; shift 2; '
                  '"$exe" -c "$code" "$@" </dev/null >/dev/null 2>&1 & echo $!')
        started = subprocess.run(["/bin/sh", "-c", launch, "sh", sys.executable, PREBUILD,
                                  *PREBUILD_SPECS], capture_output=True, text=True, check=True)
        _PREBUILD_PID = int(started.stdout)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREBUILD_PID is not None and _running(_PREBUILD_PID):
        with contextlib.suppress(ProcessLookupError):
            os.kill(_PREBUILD_PID, signal.SIGTERM)  # a session that ended early
        deadline = time.monotonic() + 60
        while _running(_PREBUILD_PID) and time.monotonic() < deadline:
            time.sleep(0.1)
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

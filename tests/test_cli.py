"""The `mfgen` command: happy paths, --help, and a table of bad arguments that must each end
in one line and exit status 2. What is about the process (exit status, one line on stderr, no
traceback, files written) runs the real entry point in processes of its own; the rest calls
`mfgen.cli.main` in this process (no interpreter start-up per call)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import mfgen

SPEC = "generic_2d_oscillator"
COMMANDS = ("build", "check", "show", "run", "simulate", "plot", "new", "list")


def mfgen_cli(*args: str, cwd: Path | None = None, timeout: float = 300
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfgen.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def mfgen_main(capsys, monkeypatch):
    """`mfgen.cli.main` in this process, as mfgen_cli runs it in a subprocess: (exit status,
    stdout, stderr) as a CompletedProcess."""
    monkeypatch.setenv("COLUMNS", "80")  # --help wraps as it does on a pipe, not the terminal

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        from mfgen.cli import main

        capsys.readouterr()  # drop what the test printed before
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            try:
                status = main(list(args))
            except SystemExit as exit_:  # argparse: --help and usage errors
                status = exit_.code if isinstance(exit_.code, int) else 1
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, status, out.out, out.err)

    return run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Files the bad-argument cases point at, and one small results file."""
    folder = tmp_path_factory.mktemp("cli")
    mfgen.build(SPEC)  # compiled once; every subprocess loads it from the session cache
    (folder / "not_a_zip.zip").write_text("weights\n")
    (folder / "existing.h5").write_text("keep me\n")
    (folder / "existing.png").write_text("keep me\n")
    (folder / "not_hdf5.h5").write_text("plain text\n")
    (folder / "emit").mkdir()
    (folder / "emit" / f"{SPEC}.c").write_text("/* mine */\n")
    (folder / "taken.yaml").write_text("keep me\n")
    (folder / "bad_spec.yaml").write_text("name: bad\nstate_variables:\n  x: {range: [0, 1]}\n"
                                          "derivatives:\n  x: -x / tua\nparameters:\n"
                                          "  tau: 1.0\n")
    (folder / "bad_key.yaml").write_text(f"spec: {SPEC}\nduration: 10\ndt: 0.1\n"
                                         "integrater: heun\n")
    (folder / "good.yaml").write_text(f"spec: {SPEC}\nconnectivity: {{source: synthetic, "
                                      "regions: 6}\nduration: 20\n"
                                      "monitors: [{kind: temporal_average, period: 1.0}]\n")
    from mfgen.cli import main

    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        patch.chdir(folder)
        assert main(["simulate", SPEC, "--regions", "6", "--duration", "20", "--out",
                     "small.h5"]) == 0
    return folder


S = ("simulate", SPEC)
BAD_ARGUMENTS = [
    # (arguments, text the one-line message must contain)
    ((*S, "--dt", "0"), "argument --dt: must be positive"),
    ((*S, "--dt", "-1"), "argument --dt: must be positive"),
    ((*S, "--dt", "nan"), "argument --dt: 'nan' is not finite"),
    ((*S, "--dt", "abc"), "argument --dt: 'abc' is not a number"),
    ((*S, "--duration", "nan"), "argument --duration: 'nan' is not finite"),
    ((*S, "--duration", "inf"), "argument --duration: 'inf' is not finite"),
    ((*S, "--duration", "0"), "argument --duration: must be positive"),
    ((*S, "--duration", "-5"), "argument --duration: must be positive"),
    ((*S, "--duration", "0.15"), "not a multiple of dt"),
    ((*S, "--regions", "0"), "argument --regions: must be between 1"),
    ((*S, "--regions", "-3"), "argument --regions: must be between 1"),
    ((*S, "--regions", "2.5"), "argument --regions: '2.5' is not a whole number"),
    ((*S, "--regions", "200000"), "a synthetic connectome of 200000 regions would take"),
    ((*S, "--speed", "0"), "argument --speed: must be positive"),
    ((*S, "--integrator", "foo"), "unknown integrator 'foo'"),
    ((*S, "--integrator", "huen"), "did you mean 'heun'"),
    ((*S, "--param", "taux=1"), "unknown parameter 'taux'; hint: did you mean 'tau'"),
    ((*S, "--param", "d"), "argument --param: write NAME=NUMBER"),
    ((*S, "--param", "d=abc"), "argument --param: 'abc' is not a number"),
    ((*S, "--param", "=1"), "argument --param: write NAME=NUMBER"),
    ((*S, "--coupling", "nosuch"), "unknown coupling function 'nosuch'"),
    ((*S, "--coupling-param", "zz=1"), "unknown parameter of coupling 'linear' 'zz'"),
    ((*S, "--coupling-param", "a=nan"), "argument --coupling-param: 'nan' is not finite"),
    ((*S, "--coupling-precision", "float16"), "argument --coupling-precision: invalid choice"),
    ((*S, "--local-coupling", "inf"), "argument --local-coupling: 'inf' is not finite"),
    ((*S, "--noise", "V=1"), "integrator 'heun' is deterministic"),
    ((*S, "--integrator", "heun_stochastic"), "is stochastic: give noise"),
    ((*S, "--integrator", "heun_stochastic", "--noise", "Q=1"), "unknown state variable 'Q'"),
    ((*S, "--integrator", "heun_stochastic", "--noise", "V=-1"), "must not be negative"),
    ((*S, "--monitor", "foo"), "unknown monitor 'foo'"),
    ((*S, "--monitor", "tavg"), "'tavg' needs a period"),
    ((*S, "--monitor", "tavg:0"), "must be positive"),
    ((*S, "--monitor", "tavg:0.15"), "monitor period 0.15 ms is not a multiple of dt"),
    ((*S, "--monitor", "raw:1"), "raw records every step"),
    ((*S, "--monitor", "tavg:1e300"), "monitor period 1e+300 ms is 1e+301 steps"),
    ((*S, "--variables", "Q"), "unknown state variable 'Q'"),
    ((*S, "--initial", "Q=1"), "unknown state variable 'Q'"),
    ((*S, "--initial", "V=nan"), "argument --initial: 'nan' is not finite"),
    ((*S, "--seed", "-1"), "argument --seed: must be between 0"),
    ((*S, "--seed", "1.5"), "argument --seed: '1.5' is not a whole number"),
    ((*S, "--chunk", "0"), "argument --chunk: must be positive"),
    ((*S, "--connectivity", "not_a_zip.zip"), "File is not a zip file"),
    ((*S, "--connectivity", "missing.zip"), "No such file or directory"),
    ((*S, "--out", "existing.h5"), "--out existing.h5 exists; pass --force"),
    ((*S, "--plot", "existing.png"), "--plot existing.png exists; pass --force"),
    ((*S, "--save-config", "taken.yaml"), "--save-config taken.yaml exists"),
    (("simulate", "no_such_spec"), "no spec file or bundled spec named 'no_such_spec'"),
    (("check", SPEC, "--points", "0"), "argument --points: must be between 2"),
    (("check", SPEC, "--points", "1"), "argument --points: must be between 2"),
    (("check", SPEC, "--rtol", "0"), "argument --rtol: must be positive"),
    (("check",), "name one or more specs"),
    (("build", "no_such_spec"), "no spec file or bundled spec named"),
    (("build", "bad_spec.yaml"),
     "bad_spec.yaml:5:11: undefined symbol 'tua'; hint: did you mean 'tau'?"),
    (("build", SPEC, "--emit-c", "emit"), f"{SPEC}.c exists; pass --force"),
    (("build", SPEC, "--build-cpu-seconds", "0"), "argument --build-cpu-seconds: must be"),
    (("build", SPEC, "--build-memory-mb", "x"), "argument --build-memory-mb: 'x' is not"),
    (("run", "missing.yaml"), "missing.yaml: no such config file"),
    (("run", "bad_key.yaml"), "bad_key.yaml:4:1: unknown key 'integrater' in the config"),
    (("run", "good.yaml", "--set", "nokey"), "an override is written key=value"),
    (("run", "good.yaml", "--set", "dt=0", "--out", "x.h5"), "'dt' must be positive"),
    (("run", "good.yaml", "--out", "y.h5", "--resume", "--force"), "choose one"),
    (("run", "good.yaml", "--out", "nothing.h5", "--resume"), "nothing to resume"),
    (("run", "good.yaml"), "no output file"),
    (("plot", "missing.h5"), "missing.h5: no such results file"),
    (("plot", "not_hdf5.h5"), "not a readable HDF5 file"),
    (("plot", "small.h5", "--variables", "Q", "--out", "q.png"), "variable 'Q' was not recorded"),
    (("plot", "small.h5", "--monitor", "nope", "--out", "n.png"), "no monitor 'nope'"),
    (("new", "1abc"), "'1abc' cannot name a model"),
    (("new", "taken"), "spec taken.yaml exists; pass --force"),
    ((), "the following arguments are required: COMMAND"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
]


# Runs each case in its own process through `mfgen.cli:main` exactly as the console script
# does (`sys.exit(main())`), forked from one interpreter that has imported mfgen once: a fresh
# interpreter per case costs ~0.3 s of start-up, 68 of them most of this file's run time.
FORKING_DRIVER = r"""
import json, os, sys
import h5py, scipy.sparse  # noqa: F401 - imported once, before forking
import mfgen, mfgen.cli, mfgen.runtime.run_config, mfgen.runtime.results  # noqa: F401
mfgen.load(sys.argv[1])
cases = json.loads(sys.stdin.read())
results = []
for index, arguments in enumerate(cases):
    out, err = f"case{index}.out", f"case{index}.err"
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        code = 1
        try:
            sys.argv = ["mfgen", *arguments]
            code = mfgen.cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append([os.waitstatus_to_exitcode(status), open(out).read(), open(err).read()])
    os.unlink(out)
    os.unlink(err)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def bad_runs(workdir):
    import json

    driver = subprocess.run([sys.executable, "-c", FORKING_DRIVER, SPEC], cwd=workdir,
                            input=json.dumps([list(case[0]) for case in BAD_ARGUMENTS]),
                            capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, driver.stderr
    return [subprocess.CompletedProcess(case[0], code, out, err) for case, (code, out, err)
            in zip(BAD_ARGUMENTS, json.loads(driver.stdout))]


def test_the_table_has_at_least_45_cases():
    assert len(BAD_ARGUMENTS) >= 45


@pytest.mark.parametrize("index", range(len(BAD_ARGUMENTS)),
                         ids=[" ".join(case[0]) or "(none)" for case in BAD_ARGUMENTS])
def test_a_bad_argument_is_one_line_and_status_2(bad_runs, index):
    _arguments, expected = BAD_ARGUMENTS[index]
    run = bad_runs[index]
    lines = run.stderr.splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1 and lines[0].startswith("mfgen: error: "), run.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in run.stderr + run.stdout


def test_refused_outputs_were_left_alone(bad_runs, workdir):
    assert (workdir / "existing.h5").read_text() == "keep me\n"
    assert (workdir / "existing.png").read_text() == "keep me\n"
    assert (workdir / "taken.yaml").read_text() == "keep me\n"
    assert (workdir / "emit" / f"{SPEC}.c").read_text() == "/* mine */\n"
    assert not (workdir / "x.h5").exists()


def test_debug_shows_the_traceback(workdir):
    run = mfgen_cli(*S, "--param", "taux=1", "--debug", cwd=workdir)
    assert run.returncode != 0 and "Traceback" in run.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_defaults(command, mfgen_main):
    run = mfgen_main(command, "--help")
    assert run.returncode == 0, run.stderr
    assert "--debug" in run.stdout and "--build-cpu-seconds" in run.stdout
    if command in ("check", "simulate", "run", "plot"):
        assert "(default: " in run.stdout


def test_simulate_help_shows_the_defaults_of_its_numbers(mfgen_main):
    text = mfgen_main("simulate", "--help").stdout
    for flag, default in (("--speed", "3.0"), ("--dt", "0.1"), ("--regions", "68"),
                          ("--duration", "1000.0"), ("--coupling-precision", "float64"),
                          ("--local-coupling", "0.0")):
        block = text[text.index("\n  " + flag):]
        # "(default: 4.0)", or with a note: "(default: 3.0, TVB's)"
        assert re.search(rf"\(default: {re.escape(default)}[),]",
                         " ".join(block[:400].split())), flag


def test_out_prints_the_path_written_and_force_overwrites(tmp_path, mfgen_main):
    # (Refusing an existing --out without --force is a case of the bad-argument table.)
    first = mfgen_cli(*S, "--regions", "5", "--duration", "10", "--out", "run.h5",
                      cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = tmp_path / "run.h5"
    assert f"wrote {written.resolve()}" in first.stdout
    with h5py.File(written, "r") as handle:
        assert handle["monitors/temporal_average/data"].shape == (10, 2, 5)
    forced = mfgen_main(*S, "--regions", "5", "--duration", "20", "--out", "run.h5", "--force",
                        cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    with h5py.File(written, "r") as handle:
        assert handle["monitors/temporal_average/data"].shape == (20, 2, 5)


def test_outputs_never_write_through_a_planted_symlink(tmp_path, mfgen_main, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "emit").mkdir()
    (tmp_path / "emit" / f"{SPEC}_reference.py").symlink_to(victim)
    (tmp_path / "plot.png").symlink_to(victim)
    refused = mfgen_main("build", SPEC, "--emit-c", "emit", cwd=tmp_path)
    assert refused.returncode == 2 and "exists; pass --force" in refused.stderr
    with monkeypatch.context() as patch:
        # --force rebuilds the module: in a cache of its own, not under the feet of the other
        # test processes that load it from the session's cache.
        patch.setenv("MFGEN_CACHE_DIR", str(tmp_path / "cache"))
        forced = mfgen_main("build", SPEC, "--emit-c", "emit", "--force", cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
    plotted = mfgen_main(*S, "--regions", "4", "--duration", "20", "--plot", "plot.png",
                         "--force", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert victim.read_text() == "precious\n"  # the links were replaced, not followed
    assert not (tmp_path / "plot.png").is_symlink()
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    emitted = tmp_path / "emit" / f"{SPEC}.c"
    assert "dfun" in emitted.read_text() and not emitted.is_symlink()


def test_save_config_writes_a_config_that_runs_the_same_simulation(tmp_path, mfgen_main):
    flags = ("--regions", "6", "--duration", "30", "--integrator", "heun_stochastic",
             "--noise", "V=0.001", "--coupling-param", "a=0.02", "--param", "d=0.05",
             "--seed", "4", "--monitor", "sub:0.5", "--variables", "V",
             "--coupling-precision", "float32", "--local-coupling", "0.1")
    direct = mfgen_main(*S, *flags, "--out", "direct.h5", "--save-config", "run.yaml",
                        cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    via_config = mfgen_main("run", "run.yaml", "--out", "config.h5", cwd=tmp_path)
    assert via_config.returncode == 0, via_config.stderr
    with h5py.File(tmp_path / "direct.h5") as a, h5py.File(tmp_path / "config.h5") as b:
        data = a["monitors/subsample/data"][()]
        assert data.shape == (60, 1, 6)
        assert np.array_equal(data, b["monitors/subsample/data"][()])
        assert a.attrs["coupling_precision"] == "float32"
        assert a.attrs["local_coupling"] == 0.1


def test_budget_flags_set_the_build_budget_variables(monkeypatch):
    from mfgen.cli import main

    monkeypatch.delenv("MFGEN_BUILD_CPU_SECONDS", raising=False)
    monkeypatch.delenv("MFGEN_BUILD_MEMORY_MB", raising=False)
    assert main(["list", "--build-cpu-seconds", "77", "--build-memory-mb", "900"]) == 0
    assert os.environ["MFGEN_BUILD_CPU_SECONDS"] == "77"
    assert os.environ["MFGEN_BUILD_MEMORY_MB"] == "900"


def test_show_prints_equations_parameters_and_latex(mfgen_main):
    plain = mfgen_main("show", "tvb_adex_first_order", "--stats")
    assert plain.returncode == 0, plain.stderr
    assert "dW_e/dt = -W_e / tau_w_e + b_e * E" in plain.stdout
    assert "E_L_e                  -65            mV       [-90, -60]" in plain.stdout
    assert "transcendental calls per node" in plain.stdout
    latex = mfgen_main("show", SPEC, "--latex")
    assert latex.returncode == 0, latex.stderr
    assert r"\frac{dV}{dt} = " in latex.stdout


def test_new_writes_a_starter_spec_that_builds_and_checks(tmp_path, mfgen_main):
    made = mfgen_main("new", "my_model", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "my_model.yaml").read_text().startswith("# A starter spec")
    checked = mfgen_main("check", "my_model.yaml", "--points", "200", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert " ok" in checked.stdout


def test_progress_is_a_bar_on_a_terminal_and_quiet_otherwise(monkeypatch):
    import io

    from mfgen.cli import _Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, expected in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        progress = _Progress("auto", 0.1, 76)
        progress.delay = 0.0  # as if the run were already past the bar's 1 s delay
        for done in range(0, 10001, 2500):
            progress(done, 10000)
        progress.close()
        text = stream.getvalue()
        assert ("1000/1000 ms" in text and "M node-steps/s" in text) == expected, text
        assert bool(text) == expected

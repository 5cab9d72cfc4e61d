"""Run the hostile spec corpus under a Python audit hook (used by test_hostile_specs.py).

    python hostile_runner.py cases.json results.json

Every case is loaded (and the accepted ones built, imported and evaluated) while an audit hook
records what the process does: files opened for writing, files moved, removed or created,
processes started, code executed. The test then checks that only the C compiler ran, that
nothing was written outside $MFGEN_CACHE_DIR, and that no code carrying a payload ran.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

RECORDED = {
    "open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.symlink",
    "os.link", "os.chmod", "os.chown", "os.truncate", "os.utime", "subprocess.Popen",
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "pty.spawn", "exec", "ctypes.dlopen", "socket.connect", "socket.bind", "urllib.Request",
    "webbrowser.open",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# What code built from a payload would use: names it looks up, and the SENTINEL it writes.
MARKER_NAMES = {"system", "__import__", "popen", "Popen", "__subclasses__", "__globals__",
                "exec", "eval", "open", "getattr"}

active = False
# Events go to a file as JSON lines as they happen: the build runs in a forked child (the
# build budget), whose events must be recorded too; O_APPEND keeps the lines whole.
events_fd = -1


def _record(event: list) -> None:
    os.write(events_fd, (json.dumps(event) + "\n").encode())


def _markers(code, depth=0):
    yield from (name for name in code.co_names if name in MARKER_NAMES)
    for const in code.co_consts:
        if isinstance(const, str) and "SENTINEL" in const:
            yield const
        elif hasattr(const, "co_consts") and depth < 8:
            yield from _markers(const, depth + 1)


def _hook(event: str, args: tuple) -> None:
    global active
    if not active or event not in RECORDED:
        return
    active = False  # no recursion while recording
    try:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writes and not isinstance(path, int):
                _record(["write", os.fsdecode(path)])
        elif event == "exec":
            code = args[0]
            _record(["exec", code.co_filename, sorted(set(_markers(code)))])
        elif event == "subprocess.Popen":
            executable, argv = args[0], args[1]
            argv = [argv] if isinstance(argv, (str, bytes)) else list(argv)
            _record(["process", os.fsdecode(executable or argv[0]),
                           [os.fsdecode(a) for a in argv]])
        elif event in ("os.rename",):
            _record(["move", os.fsdecode(args[0]), os.fsdecode(args[1])])
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.chmod",
                       "os.chown", "os.truncate", "os.utime", "os.symlink", "os.link"):
            path = args[0]
            _record(["touch", event, None if isinstance(path, int) or path is None
                           else os.fsdecode(path)])
        elif event == "os.fork":  # the build budget's child: recorded, checked by the test
            _record(["fork"])
        elif event == "ctypes.dlopen":  # a model's library: recorded, checked by the test
            _record(["dlopen", None if args[0] is None else os.fsdecode(args[0])])
        else:
            _record(["forbidden", event, repr(args)[:300]])
    finally:
        active = True


def main() -> None:
    global active, events_fd
    cases = json.load(open(sys.argv[1]))
    events_path = sys.argv[2] + ".events"
    events_fd = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    # Everything mfgen imports lazily is imported before recording starts, so the record
    # holds what the corpus makes mfgen do, not Python's own start-up.
    import numpy as np

    import mfgen
    from mfgen.codegen import ir, optimize, printing, render, spec  # noqa: F401
    from mfgen.errors import SpecError
    from mfgen.runtime.toolchain import detect_toolchain

    toolchain = detect_toolchain()
    results = {}
    sys.addaudithook(_hook)
    active = True
    for case in cases:
        start = time.perf_counter()
        try:
            if case["compile"]:
                model = mfgen.load(case["path"])
                state = np.array(case["state"], dtype=float)
                coupling = np.array(case["coupling"], dtype=float)
                values = model.dfun(state, coupling)
                per_node = model.dfun(state, coupling, **{
                    name: np.full(state.shape[1], value) for name, value in
                    model.parameters.items() if np.ndim(value) == 0})
                reference = model.reference.dfun(state, coupling)
                outcome = {"status": "accepted", "values": values.tolist(),
                           "per_node": per_node.tolist(), "reference": reference.tolist(),
                           "module_dir": str(mfgen.build(case["path"]).module_dir)}
            else:
                ir.build_ir(spec.load_spec(case["path"]))
                outcome = {"status": "accepted"}
        except SpecError as exc:
            outcome = {"status": "SpecError", "location": str(exc.location or ""),
                       "message": exc.bare_message, "hint": exc.hint, "text": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - any other escape is what we look for
            outcome = {"status": type(exc).__name__, "text": str(exc)[:2000],
                       "traceback": traceback.format_exc()[-4000:]}
        outcome["seconds"] = time.perf_counter() - start
        results[case["id"]] = outcome
    active = False
    os.close(events_fd)
    with open(events_path) as handle:
        events = [json.loads(line) for line in handle]
    os.unlink(events_path)
    with open(sys.argv[2], "w") as handle:
        json.dump({"results": results, "events": events,
                   "compiler": toolchain.compiler}, handle)


if __name__ == "__main__":
    main()

"""Hostile code against the sandbox: it must be contained and never be counted as a pass.

Every attack here is bounded *inside the test itself*, so that a broken sandbox cannot take the
machine down: fork bombs fork a fixed number of times and their children exit, the memory bomb
stops at 3 GiB, floods stop at 50 MB, loops rely on the verifier's timeout and each call is
asserted to return within a generous wall-clock bound.

Holes that exist today are written as `xfail(strict=True, reason="HOLE: ...")`: when a hole is
fixed the test starts passing, strict xfail turns that into a failure, and the marker comes off.
The one thing a sandbox cannot see, semantic reward hacking (an object whose `__eq__` is always
true), is documented by a test that asserts it *does* pass.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from dsl.sandbox import SANDBOX_UID, isolation
from dsl.verifier import Verifier

REPO = Path(__file__).resolve().parents[1]
MODES = ["fork", "fresh"]
WALL_BOUND_S = 20.0  # no verify call, however hostile the code, may take longer than this
OUT_CAP = 65536  # Limits.out_bytes
OUT_SLACK = 1024
PY311 = sys.version_info[:2] == (3, 11)  # `_posixsubprocess.fork_exec` signature used below

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only"),
    pytest.mark.skipif(sys.platform.startswith("linux") and isolation() != "bwrap",
                       reason="hostile code is only run under bubblewrap isolation"),
]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox uid is only used when started as root")
needs_py311 = pytest.mark.skipif(not PY311, reason="the fork_exec call below uses Python 3.11's signature")

# --- shared snippets ----------------------------------------------------------------------------

WRONG_ADD = "def add(a, b):\n    return a - b\n"
GOOD_ADD = "def add(a, b):\n    return a + b\n"
# three tests, all of which the wrong `add` fails: two top-level asserts and a test function
TESTS3 = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n\ndef test_add():\n    assert add(0, 5) == 5\n"

# Forge a full set of passing records under a candidate nonce and write them to every fd
# (results pipe or records file, whichever it is today), then exit before the driver writes more.
FORGE = r'''
import os as _os

def _looks_like_nonce(v):
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    v = v.strip() if isinstance(v, str) else ""
    return len(v) == 32 and all(c in "0123456789abcdef" for c in v)

def _forge(nonce):
    if isinstance(nonce, bytes):
        nonce = nonce.decode("latin-1")
    tag = nonce.strip().encode() + b" "
    recs = [("code", "ok", "", "", 0)]
    recs += [("test", i, "pass", "", "", 0, "", "") for i in range(32)]
    recs.append(("end",))
    data = b"".join(tag + repr(r).encode() + b"\n" for r in recs)
    for fd in range(3, 64):
        try:
            _os.write(fd, data)
        except OSError:
            pass

def _hunt(frame):
    found = 0
    while frame is not None:
        for v in list(frame.f_locals.values()):
            if _looks_like_nonce(v):
                _forge(v)
                found += 1
        frame = frame.f_back
    if found:
        _os._exit(0)
'''

# Start a program without the audit hook seeing it (Python 3.11's `_posixsubprocess.fork_exec`,
# which is what subprocess uses once its own `sys.audit` call has been made).
SPAWN = r'''
import os as _os
import _posixsubprocess

def _spawn(argv, new_session=False, out=-1):
    er, ew = _os.pipe()
    pid = _posixsubprocess.fork_exec(
        [_os.fsencode(a) for a in argv], [_os.fsencode(argv[0])], True, (), None, None,
        -1, -1, -1, out, -1, out, er, ew, True, new_session, -1, None, None, None, -1, None, False)
    _os.close(ew)
    _os.read(er, 1000)
    _os.close(er)
    return pid

def _spawn_output(argv):
    r, w = _os.pipe()
    pid = _spawn(argv, out=w)
    _os.close(w)
    out = b""
    while True:
        chunk = _os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    _os.close(r)
    _os.waitpid(pid, 0)
    return out
'''


def code_of(*parts: str) -> str:
    return "\n".join(textwrap.dedent(p).strip("\n") + "\n" for p in parts)


def in_function(attack: str) -> str:
    """`attack` run by the function under test (so from inside a test), not at import."""
    return ("def _attack():\n" + textwrap.indent(textwrap.dedent(attack).strip("\n"), "    ") + "\n\n"
            "def add(a, b):\n    _attack()\n    return a - b\n")


def at_import(attack: str) -> str:
    return textwrap.dedent(attack).strip("\n") + "\n" + WRONG_ADD


@pytest.fixture(scope="module")
def verifiers():
    vs = {mode: Verifier(mode) for mode in MODES}
    yield vs
    for v in vs.values():
        v.close()


def run(v: Verifier, code, tests, timeout_s: float = 2):
    start = time.monotonic()
    r = v.verify(code, tests, timeout_s=timeout_s)
    wall = time.monotonic() - start
    assert wall < WALL_BOUND_S, f"verify took {wall:.1f}s"
    assert isinstance(r.passed, bool) and isinstance(r.feedback, str)
    return r


def assert_rejected(r, *, tests_passed: int | None = 0):
    """Not passed, with feedback that says so; by default not a single test counted as passing."""
    assert not r.passed, r.feedback
    assert r.feedback.strip() and not r.feedback.startswith("All "), r.feedback
    if tests_passed is not None:
        assert r.tests_passed == tests_passed, r.feedback


def assert_recovers(v: Verifier):
    r = run(v, GOOD_ADD, TESTS3)
    assert r.passed and r.tests_passed == r.tests_total == 3, r.feedback


# --- processes owned by the sandbox uid ---------------------------------------------------------

def _proc_table() -> dict[int, dict]:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            table[int(name)] = {"ppid": int(fields["PPid"]), "uid": int(fields["Uid"].split()[0]),
                                "state": fields["State"].strip(), "cmd": cmd,
                                "nspid": int(fields.get("NSpid", name).split()[-1])}
        except (KeyError, ValueError, IndexError):
            continue
    return table


def sandbox_leftovers() -> list[tuple[int, bytes]]:
    """Live processes of the sandbox uid descended from this test process, other than a warm fork
    server (pid 2 of its namespace; as root it keeps uid 0 and only its runs take the sandbox uid)
    and its own children (the pre-forked spare). Other people's sandboxes on this machine use the
    same uid, hence the ancestry filter."""
    table, me = _proc_table(), os.getpid()

    def is_server(pid):
        p = table.get(pid)
        return bool(p) and p["nspid"] == 2 and b"sandbox_driver.py" in p["cmd"] and b"--serve" in p["cmd"]

    out = []
    for pid, p in table.items():
        if p["uid"] != SANDBOX_UID or p["state"].startswith(("Z", "X")) or is_server(pid):
            continue
        if is_server(p["ppid"]) and b"sandbox_driver.py" in p["cmd"]:
            continue  # the spare child, forked ahead of the next run
        anc, hops = p["ppid"], 0
        while anc not in (0, 1, me) and hops < 64:
            anc, hops = table.get(anc, {"ppid": 0})["ppid"], hops + 1
        if anc == me:
            out.append((pid, p["cmd"][:100]))
    return out


def leftovers_after(grace_s: float = 3.0) -> list[tuple[int, bytes]]:
    deadline = time.monotonic() + grace_s
    while True:
        left = sandbox_leftovers()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


# --- infinite loops -----------------------------------------------------------------------------

LOOPS = {
    "cpu_at_import": "while True:\n    pass\n" + WRONG_ADD,
    "sleep_at_import": "import time\nwhile True:\n    time.sleep(0.05)\n" + WRONG_ADD,
    "cpu_in_test": "def add(a, b):\n    while True:\n        pass\n",
    "sleep_in_test": "import time\ndef add(a, b):\n    while True:\n        time.sleep(0.05)\n",
    "signals_ignored": ("import signal\n"
                        "for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):\n"
                        "    signal.signal(_s, signal.SIG_IGN)\n"
                        "while True:\n    pass\n" + WRONG_ADD),
}
LOOP_CASES = [("fork", k) for k in LOOPS] + [("fresh", "cpu_at_import"), ("fresh", "sleep_in_test")]


@pytest.mark.parametrize("mode,case", LOOP_CASES, ids=[f"{m}-{c}" for m, c in LOOP_CASES])
def test_infinite_loop_times_out(verifiers, mode, case):
    r = run(verifiers[mode], LOOPS[case], TESTS3, timeout_s=1)
    assert_rejected(r)
    if case == "signals_ignored":  # the code runs off the main thread: no handlers at all
        assert "signal only works in main thread" in r.feedback, r.feedback
        return
    assert r.timed_out, r.feedback
    assert "Timeout" in r.feedback, r.feedback


# --- memory, processes, output ------------------------------------------------------------------

MEMORY_BOMB = '''
_hold = []
for _ in range(12):  # 12 x 256 MiB = 3 GiB at most, each page touched
    _hold.append(b"\\x01" * (256 << 20))
'''


@pytest.mark.parametrize("mode,where", [("fork", "import"), ("fork", "test"), ("fresh", "import")])
def test_memory_bomb_is_contained(verifiers, mode, where):
    code = MEMORY_BOMB + GOOD_ADD if where == "import" else in_function(MEMORY_BOMB)
    r = run(verifiers[mode], code, TESTS3, timeout_s=5)
    assert_rejected(r)
    assert "MemoryError" in r.feedback or r.code_status == "crashed", r.feedback
    assert_recovers(verifiers[mode])


FORK_BOMBS = {  # each bounded: at most 200 children, each of which sleeps 2 s and exits
    "os.fork": '''
        import os, time
        for _ in range(200):
            if os.fork() == 0:
                time.sleep(2)
                os._exit(0)
    ''',
    "os.forkpty": '''
        import os, time
        for _ in range(200):
            if os.forkpty()[0] == 0:
                time.sleep(2)
                os._exit(0)
    ''',
    "os.posix_spawn": '''
        import os
        for _ in range(200):
            os.posix_spawn("/bin/sleep", ["sleep", "2"], {})
    ''',
    "os.system": '''
        import os
        for _ in range(200):
            os.system("sleep 2 &")
    ''',
    "os.execv": '''
        import os
        os.execv("/bin/sleep", ["sleep", "2"])
    ''',
    "subprocess": '''
        import subprocess
        for _ in range(200):
            subprocess.Popen(["/bin/sleep", "2"])
    ''',
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", list(FORK_BOMBS))
def test_bounded_fork_bomb_is_refused(verifiers, mode, how):
    r = run(verifiers[mode], code_of(FORK_BOMBS[how], GOOD_ADD), TESTS3)
    assert_rejected(r)
    assert "not allowed" in r.feedback or "PermissionError" in r.feedback, r.feedback
    if os.geteuid() == 0:  # the sandbox runs as SANDBOX_UID only when started as root
        assert leftovers_after() == []


@needs_root
@needs_py311
@pytest.mark.parametrize("mode", MODES)
def test_process_creation_via_fork_exec_is_refused(verifiers, mode):
    code = code_of(SPAWN, '''
        def add(a, b):
            return _spawn_output(["/bin/echo", "spawned"])
    ''')
    r = run(verifiers[mode], code, "assert add(1, 2) == b'spawned\\n'\n")
    assert_rejected(r)


@needs_root
@needs_py311
@pytest.mark.parametrize("mode", [
    "fork",
    "fresh",
])
def test_detached_process_does_not_outlive_the_run(mode):
    v = Verifier(mode)  # its own server: closing it ends whatever was left inside
    try:
        code = code_of(SPAWN, '''
            for _ in range(5):  # bounded: five sleeps of 5 s
                _spawn(["/bin/sleep", "5"], new_session=True)
        ''', WRONG_ADD)
        r = run(v, code, TESTS3)
        assert_rejected(r)
        assert leftovers_after(grace_s=2.0) == []
    finally:
        v.close()


@pytest.mark.parametrize("mode", MODES)
def test_stdout_flood_is_capped(verifiers, mode):
    code = code_of('''
        import os
        _chunk = b"A" * (1 << 20)
        for _ in range(50):  # 50 MB
            os.write(1, _chunk)
    ''', WRONG_ADD)
    r = run(verifiers[mode], code, TESTS3, timeout_s=5)
    assert_rejected(r)
    assert 0 < len(r.output) <= OUT_CAP + OUT_SLACK


@pytest.mark.parametrize("mode", [
    "fork",
    "fresh",
])
def test_stdout_and_stderr_flood_is_capped_together(verifiers, mode):
    code = code_of('''
        import os, sys
        _chunk = b"A" * (1 << 20)
        for _ in range(25):  # 25 MB to each stream, 50 MB in all
            os.write(1, _chunk)
            os.write(2, _chunk)
        print("and some", file=sys.stderr)
    ''', WRONG_ADD)
    r = run(verifiers[mode], code, TESTS3, timeout_s=5)
    assert_rejected(r)
    assert 0 < len(r.output) <= OUT_CAP + OUT_SLACK


FLOOD_MEMORY_SCRIPT = r'''
import sys
sys.path.insert(0, sys.argv[1])
from dsl.verifier import Verifier

def peak_rss_kb():  # this process's own high-water mark (ru_maxrss would include the parent's)
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])

v = Verifier(sys.argv[2])
assert v.verify("def f(): return 1", "assert f() == 1").passed
before = peak_rss_kb()
code = "import os\nfor _ in range(48):\n    os.write(1, b'A' * (1 << 20))\ndef f(): return 1\n"
r = v.verify(code, "assert f() == 2", timeout_s=5)
after = peak_rss_kb()
v.close()
print(r.passed, (after - before) // 1024)
'''


@pytest.mark.parametrize("mode", [
    "fork",
    "fresh",
])
def test_output_flood_does_not_grow_the_verifier(mode):
    p = subprocess.run([sys.executable, "-c", FLOOD_MEMORY_SCRIPT, str(REPO), mode],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    passed, grew_mb = p.stdout.split()
    assert passed == "False"
    assert int(grew_mb) < 24, f"the verifier grew by {grew_mb} MB for 48 MB of output"


# --- forgeries ----------------------------------------------------------------------------------

PRINTS = '''
import sys
for _s in ("All 3 tests pass.", "OK", "passed", "Tests: 3/3 pass.", "PASSED"):
    print(_s)
    print(_s, file=sys.stderr)
sys.stdout.flush()
'''
FORGERIES = {
    "sys.exit(0)": at_import("import sys\nsys.exit(0)"),
    "sys.exit(0) in test": in_function("import sys\nsys.exit(0)"),
    "os._exit(0)": at_import("import os\nos._exit(0)"),
    "os._exit(0) in test": in_function("import os\nos._exit(0)"),
    "raise SystemExit": at_import("raise SystemExit"),
    "raise SystemExit in test": in_function("raise SystemExit(0)"),
    "raise KeyboardInterrupt in test": in_function("raise KeyboardInterrupt"),
    "print pass": at_import(PRINTS),
    "print pass in test": in_function(PRINTS),
    "print pass then exit": at_import(PRINTS + "import os\nos._exit(0)"),
    "AssertionError replaced": at_import(
        "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})"),
    "AssertionError replaced in test": in_function(
        "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})"),
    "builtins replaced": at_import('''
        import builtins
        builtins.len = lambda *a, **k: 0
        builtins.repr = lambda *a, **k: "('test', 0, 'pass', '', '', 0, '', '')"
        builtins.str = lambda *a, **k: "pass"
        builtins.isinstance = lambda *a, **k: False
        builtins.exec = lambda *a, **k: None
        builtins.eval = lambda *a, **k: True
        builtins.range = lambda *a, **k: iter(())
        builtins.type = lambda *a, **k: None
    '''),
    "builtins replaced in test": in_function('''
        import builtins
        builtins.exec = lambda *a, **k: None
        builtins.eval = lambda *a, **k: True
        builtins.repr = lambda *a, **k: "pass"
        builtins.len = lambda *a, **k: 0
    '''),
    "__main__ overwritten": at_import('''
        import __main__
        _ok = [("code", "ok", "", "", 0)] + [("test", i, "pass", "", "", 0, "", "") for i in range(32)] + [("end",)]
        for _name, _value in {
            "exec": lambda *a, **k: None, "eval": lambda *a, **k: True, "range": lambda *a: iter(()),
            "len": lambda *a: 0, "AssertionError": type("X", (Exception,), {}),
            "run_child": lambda *a, **k: None, "parse_records": lambda *a, **k: list(_ok),
            "CODE_LINE_OFFSET": 0, "TEST_LINE_OFFSET": 0, "RECORD_BUDGET": 0,
            "collect": lambda *a, **k: {"records": list(_ok)},
        }.items():
            setattr(__main__, _name, _value)
    '''),
    "__main__ overwritten in test": in_function('''
        import __main__
        __main__.exec = lambda *a, **k: None
        __main__.eval = lambda *a, **k: True
        __main__.AssertionError = type("X", (Exception,), {})
        __main__.parse_records = lambda *a, **k: []
    '''),
    "os.write patched": at_import('''
        import os
        _real_write = os.write
        def _write(fd, data):
            data = bytes(data).replace(b"'fail'", b"'pass'").replace(b"'error'", b"'pass'")
            return _real_write(fd, data)
        os.write = _write
    '''),
    "os.write patched in test": in_function('''
        import os
        _real_write = os.write
        os.write = lambda fd, data: _real_write(fd, bytes(data).replace(b"'fail'", b"'pass'"))
    '''),
    "guessed records on every fd then exit": at_import('''
        import os
        _recs = [("code", "ok", "", "", 0)] + [("test", i, "pass", "", "", 0, "", "") for i in range(16)] + [("end",)]
        _guesses = [b"x ", b"", b"0" * 32 + b" ", os.urandom(16).hex().encode() + b" ", b"None ", b"nonce "]
        _lines = b"".join(g + repr(r).encode() + b"\\n" for g in _guesses for r in _recs)
        for _fd in range(0, 51):
            try:
                os.write(_fd, _lines)
            except OSError:
                pass
        os._exit(0)
    '''),
    "guessed records on every fd in test": in_function('''
        import os
        _line = b"x ('test', 0, 'pass', '', '', 0, '', '')\\n"
        _recs = b"".join(b"x " + repr(("test", i, "pass", "", "", 0, "", "")).encode() + b"\\n" for i in range(16))
        for _fd in range(0, 51):
            try:
                os.write(_fd, _line + _recs + b"x ('end',)\\n")
            except OSError:
                pass
    '''),
    "records rewritten in place": in_function('''
        import os
        _recs = b"".join(b"x " + repr(("test", i, "pass", "", "", 0, "", "")).encode() + b"\\n" for i in range(16))
        for _fd in range(3, 51):
            try:
                os.pwrite(_fd, _recs, 0)
            except OSError:
                pass
            try:
                os.ftruncate(_fd, 0)
            except OSError:
                pass
    '''),
    "sys.settrace": at_import('''
        import sys
        def _tracer(frame, event, arg):
            return _tracer
        sys.settrace(_tracer)
    '''),
    "sys.setprofile": at_import("import sys\nsys.setprofile(lambda *a: None)"),
    "threading.settrace": in_function('''
        import sys, threading
        threading.settrace(lambda *a: None)
        sys.settrace(lambda *a: None)
    '''),
    # refused silently: CPython drops a new hook when an existing one raises an Exception
    "sys.addaudithook": at_import("import sys\nsys.addaudithook(lambda *a: None)"),
    "raise SkipTest in test": in_function("import unittest\nraise unittest.SkipTest('skip me')"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(FORGERIES))
def test_forgery_is_not_a_pass(verifiers, mode, name):
    r = run(verifiers[mode], FORGERIES[name], TESTS3)
    assert_rejected(r)
    if name.startswith(("sys.settrace", "sys.setprofile", "threading.settrace")):
        assert "not allowed" in r.feedback, r.feedback


# Ways to reach the nonce (frames, the GC, ctypes, /proc, /dev): each must be refused by the hook.
NONCE_HUNTS = {
    "sys._getframe": "import sys\n_hunt(sys._getframe())",
    "inspect.currentframe": "import inspect\n_hunt(inspect.currentframe())",
    "traceback.walk_stack": "import traceback\nfor _f, _ in traceback.walk_stack(None):\n    _hunt(_f)",
    "sys._current_frames": "import sys\nfor _f in sys._current_frames().values():\n    _hunt(_f)",
    "e.__traceback__.tb_frame": "try:\n    raise ValueError\nexcept ValueError as e:\n    _hunt(e.__traceback__.tb_frame)",
    "sys.exc_info tb_frame": "import sys\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    _hunt(sys.exc_info()[2].tb_frame)",
    "generator gi_frame": "def _g():\n    yield 1\n_gen = _g()\nnext(_gen)\n_hunt(_gen.gi_frame)",
    "coroutine cr_frame": "async def _c():\n    pass\n_co = _c()\ntry:\n    _hunt(_co.cr_frame)\nfinally:\n    _co.close()",
    "gc.get_objects": ("import gc\nfor _o in gc.get_objects():\n    if isinstance(_o, dict):\n"
                       "        for _v in list(_o.values()):\n            if _looks_like_nonce(_v):\n                _forge(_v)"),
    "gc.get_referrers": "import gc\nfor _o in gc.get_referrers(_forge):\n    pass",
    "gc.get_referents": "import gc\nfor _o in gc.get_referents(globals()):\n    pass",
    "import ctypes": "import ctypes\nctypes.string_at(id(_forge), 64)",
    "import _ctypes": "import _ctypes",
    "importlib ctypes": "import importlib\nimportlib.import_module('ctypes.util')",
    "open /proc/self/mem": "_data = open('/proc/self/mem', 'rb').read(4096)",
    "os.open /proc/self/mem": "import os\n_fd = os.open('/proc/self/mem', os.O_RDONLY)",
    "open /proc/self/maps": "_data = open('/proc/self/maps').read()",
    "open /proc/self/environ": "import pathlib\n_data = pathlib.Path('/proc/self/environ').read_bytes()",
    "open /proc/self/fd/3": "_data = open('/proc/self/fd/3', 'rb').read()",
    "open /dev/fd/3": "_data = open('/dev/fd/3', 'rb').read()",
    "open relative ../proc": "_data = open('../../../../../proc/self/mem', 'rb').read(1)",
    "os.chdir /proc": "import os\nos.chdir('/proc/self')",
    "os.fchdir": "import os\nos.fchdir(os.open('/', os.O_RDONLY))",
    "os.symlink to /proc": "import os\nos.symlink('/' + 'pro' + 'c/self/mem', 'm')\n_data = open('m', 'rb').read(1)",
}


@pytest.mark.parametrize("mode,where", [("fork", "import"), ("fork", "test"), ("fresh", "import")])
@pytest.mark.parametrize("name", list(NONCE_HUNTS))
def test_nonce_hunt_is_refused(verifiers, mode, where, name):
    attack = NONCE_HUNTS[name]
    code = FORGE + (at_import(attack) if where == "import" else in_function(attack))
    r = run(verifiers[mode], code, TESTS3)
    assert_rejected(r)
    assert "not allowed" in r.feedback, r.feedback


@pytest.mark.parametrize("mode", MODES)
def test_listing_proc_self_fd_and_writing_everywhere_is_not_a_pass(verifiers, mode):
    code = code_of(FORGE, '''
        import os
        try:
            _fds = [int(x) for x in os.listdir("/proc/self/fd")]
        except OSError:
            _fds = list(range(64))
        for _fd in _fds:
            try:
                os.write(_fd, b"x ('end',)\\n")
            except OSError:
                pass
    ''', WRONG_ADD)
    assert_rejected(run(verifiers[mode], code, TESTS3))


@pytest.mark.parametrize("mode", MODES)
def test_proc_block_cannot_be_bypassed_with_a_str_subclass(verifiers, mode):
    code = code_of('''
        class _Path(str):
            def __contains__(self, part):
                return False

        def add(a, b):
            with open(_Path("/proc/self/status")) as f:
                return f.read(5)
    ''')
    r = run(verifiers[mode], code, "assert add(1, 2) == 'Name:'\n")
    assert_rejected(r)


@pytest.mark.parametrize("mode", MODES)
def test_signal_handler_frame_cannot_reach_the_nonce(verifiers, mode):
    code = code_of(FORGE, '''
        import signal
        signal.signal(signal.SIGUSR1, lambda signum, frame: _hunt(frame))
        signal.raise_signal(signal.SIGUSR1)
    ''', WRONG_ADD)
    assert_rejected(run(verifiers[mode], code, TESTS3))


@pytest.mark.parametrize("mode", MODES)
def test_interval_timer_frames_cannot_reach_the_nonce(verifiers, mode):
    code = code_of(FORGE, '''
        import signal

        def _on_timer(signum, frame):  # kept cheap: it runs every 20 microseconds
            if frame.f_code.co_name in ("run_child", "emit"):
                v = frame.f_locals.get("tag")
                if v is not None and _looks_like_nonce(v):
                    _forge(v)
                    _os._exit(0)

        signal.signal(signal.SIGALRM, _on_timer)
        signal.setitimer(signal.ITIMER_REAL, 0.00002, 0.00002)
    ''', WRONG_ADD)
    tests = "".join(f"assert add({i}, 2) == {i + 2}\n" for i in range(30))
    results = [run(verifiers[mode], code, tests) for _ in range(3)]
    for r in results:
        assert_rejected(r)


@pytest.mark.parametrize("mode", MODES)
def test_signal_tricks_are_not_a_pass(verifiers, mode):
    v = verifiers[mode]
    alarm = code_of('''
        import signal, time
        signal.alarm(1)
        def add(a, b):
            time.sleep(5)
            return a + b
    ''')
    assert_rejected(run(v, alarm, TESTS3, timeout_s=3))
    exit_on_alarm = code_of('''
        import os, signal, time
        signal.signal(signal.SIGALRM, lambda *a: os._exit(0))
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        def add(a, b):
            time.sleep(0.05)
            return a + b
    ''')
    assert_rejected(run(v, exit_on_alarm, TESTS3))
    assert_recovers(v)


KILLS = {
    "os.kill(os.getppid(), 9)": "import os\nos.kill(os.getppid(), 9)",
    "os.kill(1, 9)": "import os\nos.kill(1, 9)",
    "os.killpg(0, 9)": "import os\nos.killpg(0, 9)",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(KILLS))
def test_killing_the_supervisor_is_refused(verifiers, mode, name):
    r = run(verifiers[mode], at_import(KILLS[name]), TESTS3)
    assert_rejected(r)
    assert "not allowed" in r.feedback, r.feedback
    assert_recovers(verifiers[mode])


@pytest.mark.parametrize("mode", [
    "fork",
    "fresh",
])
def test_pidfd_kill_of_the_supervisor_is_refused(verifiers, mode):
    code = in_function("import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL)")
    r = run(verifiers[mode], code, TESTS3)
    assert_rejected(r)
    assert_recovers(verifiers[mode])
    assert "Cannot verify" not in r.feedback, r.feedback


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("daemon", [True, False])
def test_background_thread_writing_to_fds_is_not_a_pass(verifiers, mode, daemon):
    code = code_of(f'''
        import os, threading, time

        def _spam():
            deadline = time.monotonic() + 3  # bounded
            line = b"x ('test', 0, 'pass', '', '', 0, '', '')\\n('end',)\\nOK\\n"
            while time.monotonic() < deadline:
                for fd in range(0, 51):
                    try:
                        os.write(fd, line)
                    except OSError:
                        pass
                time.sleep(0.0005)

        threading.Thread(target=_spam, daemon={daemon}).start()
        time.sleep(0.01)
    ''', WRONG_ADD)
    r = run(verifiers[mode], code, TESTS3)
    assert_rejected(r)
    assert r.wall_s < 5


def test_always_equal_object_is_not_caught_by_sandbox(verifiers):
    """Semantic reward hacking: the code returns an object equal to anything. No sandbox can tell
    this from a right answer; it has to be caught elsewhere (e.g. tests that check types)."""
    code = code_of('''
        class _Always:
            def __eq__(self, other):
                return True
            __hash__ = None

        def add(a, b):
            return _Always()
    ''')
    r = run(verifiers["fork"], code, TESTS3)
    assert r.passed, r.feedback


# --- deleting or skipping tests -----------------------------------------------------------------

TESTS_12 = "def test_1():\n    assert f(1) == 1\n\ndef test_2():\n    assert f(2) == 3\n"
SKIPS = {
    "test names defined by the code": "test_1 = None\ntest_2 = lambda: None\ndef f(x):\n    return x\n",
    "test_2 replaced in globals": "def f(x):\n    globals()['test_2'] = lambda: None\n    return x\n",
    "test_2 deleted from globals": "def f(x):\n    globals().pop('test_2', None)\n    return x\n",
    "test_2.__code__ replaced": ("def f(x):\n    try:\n"
                                "        globals()['test_2'].__code__ = (lambda: None).__code__\n"
                                "    except Exception:\n        pass\n    return x\n"),
    "test_2 wrapped": ("def f(x):\n    t = globals()['test_2']\n"
                       "    globals()['test_2'] = lambda: None\n    globals()['test_3'] = t\n    return x\n"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(SKIPS))
def test_deleting_or_replacing_tests_does_not_skip_them(verifiers, mode, name):
    r = run(verifiers[mode], SKIPS[name], TESTS_12)
    assert_rejected(r, tests_passed=1)
    assert r.tests_total == 2
    assert "test_2()" in r.feedback, r.feedback


# The code runs in the same interpreter and namespace as the tests, so it can change what the
# tests themselves call. These are not semantic: the code's answers are wrong.
@pytest.mark.parametrize("mode", MODES)
def test_code_cannot_replace_builtins_the_tests_use(verifiers, mode):
    code = "import builtins\nbuiltins.len = lambda x: 3\ndef f():\n    return []\n"
    assert_rejected(run(verifiers[mode], code, "assert len(f()) == 3\n"))


@pytest.mark.parametrize("mode", MODES)
def test_code_cannot_replace_a_helper_the_tests_define(verifiers, mode):
    code = "def f(x):\n    globals()['check'] = lambda *a: None\n    return x + 1\n"
    tests = "def check(x, want):\n    assert f(x) == want\n\ncheck(1, 2)\ncheck(2, 5)\ncheck(3, 9)\n"
    assert_rejected(run(verifiers[mode], code, tests), tests_passed=1)


@pytest.mark.parametrize("mode", MODES)
def test_code_cannot_replace_a_module_the_tests_import(verifiers, mode):
    code = code_of('''
        import sys, types
        _fake = types.ModuleType("math")
        _fake.isclose = lambda *a, **k: True
        sys.modules["math"] = _fake
        def f():
            return 99.0
    ''')
    assert_rejected(run(verifiers[mode], code, "import math\nassert math.isclose(f(), 0.5)\n"))


# --- file system and network --------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_writes_outside_the_workdir_do_not_reach_the_host(verifiers, mode):
    tag = uuid.uuid4().hex
    targets = [REPO / f"PWNED-{tag}", REPO / "tests" / f"PWNED-{tag}", Path(f"/tmp/PWNED-{tag}"),
               Path.home() / f"PWNED-{tag}", Path(f"/var/tmp/PWNED-{tag}")]
    relative = "../" * 12 + f"tmp/PWNED-rel-{tag}"
    code = code_of(f'''
        import os
        TARGETS = {[str(t) for t in targets] + [relative]!r}
        WROTE = 0
        for _p in TARGETS:
            try:
                with open(_p, "w") as _fh:
                    _fh.write("pwned")
                WROTE += 1
            except OSError:
                pass
        def add(a, b):
            return WROTE
    ''')
    try:
        r = run(verifiers[mode], code, f"assert add(1, 2) == {len(targets) + 1}\n")
        assert_rejected(r)
    finally:
        found = [t for t in [*targets, Path(f"/tmp/PWNED-rel-{tag}")] if t.exists()]
        for t in found:
            t.unlink()
    assert found == []


@needs_py311
@pytest.mark.parametrize("mode", MODES)
def test_writes_by_a_hook_free_process_do_not_reach_the_host(verifiers, mode):
    """Defense in depth: even a program the audit hook never sees is held by the namespaces."""
    tag = uuid.uuid4().hex
    targets = [REPO / f"PWNED-{tag}", Path(f"/tmp/PWNED-{tag}"), Path.home() / f"PWNED-{tag}"]
    script = "; ".join(f"echo pwned > {t}" for t in targets) + "; echo done"
    code = code_of(SPAWN, f'''
        def add(a, b):
            return _spawn_output(["/bin/sh", "-c", {script!r}])
    ''')
    try:
        r = run(verifiers[mode], code, "assert add(1, 2) == b'never'\n")
        assert_rejected(r)
    finally:
        found = [t for t in targets if t.exists()]
        for t in found:
            t.unlink()
    assert found == []


@pytest.mark.parametrize("mode", [
    "fork",
    "fresh",
])
def test_files_do_not_persist_between_runs(verifiers, mode):
    path = f"/tmp/coedit-persist-{uuid.uuid4().hex}"
    run(verifiers[mode], f"open({path!r}, 'w').write('x')\n" + GOOD_ADD, TESTS3)
    code = f"import os\ndef add(a, b):\n    return os.path.exists({path!r})\n"
    assert_rejected(run(verifiers[mode], code, "assert add(1, 2) is True\n"))
    assert not os.path.exists(path)


@pytest.fixture
def listener():
    """A real server on the host's loopback: if the sandbox had the host's network, it would connect."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def assert_nobody_connected(srv):
    with pytest.raises(BlockingIOError):
        conn, _ = srv.accept()
        conn.close()


@pytest.mark.parametrize("mode", MODES)
def test_network_is_unreachable(verifiers, mode, listener):
    port = listener.getsockname()[1]
    code = code_of('''
        import socket
        def connect(host, port):
            try:
                s = socket.create_connection((host, port), timeout=1)
            except BaseException:
                return False
            s.close()
            return True
    ''')
    tests = f"assert connect('127.0.0.1', {port}) is True\nassert connect('10.255.255.1', 80) is True\n"
    r = run(verifiers[mode], code, tests, timeout_s=5)
    assert_rejected(r)
    assert_nobody_connected(listener)


@needs_py311
@pytest.mark.parametrize("mode", MODES)
def test_network_is_unreachable_for_a_hook_free_process(verifiers, mode, listener):
    """Defense in depth: a python the audit hook never sees still has no network."""
    port = listener.getsockname()[1]
    probe = ("import socket\nfor addr in (('127.0.0.1', %d), ('10.255.255.1', 80)):\n"
             "    try:\n        socket.create_connection(addr, timeout=1)\n        print('CONNECTED')\n"
             "    except OSError as e:\n        print('FAILED', e)\n" % port)
    code = code_of(SPAWN, f'''
        import sys
        def connect():
            return _spawn_output([sys.executable, "-I", "-S", "-c", {probe!r}])
    ''')
    r = run(verifiers[mode], code, "assert b'CONNECTED' in connect()\n", timeout_s=5)
    assert_rejected(r)
    assert_nobody_connected(listener)


# --- bad input ----------------------------------------------------------------------------------

BAD_INPUTS = {
    "non-UTF-8 code": (b"def add(a, b):\n    return '\xff\xfe'\n", TESTS3),
    "non-UTF-8 tests": (GOOD_ADD, b"assert add(1, 2) == '\xff'\n"),
    "NUL in code": ("def add(a, b):\x00\n    return a + b\n", TESTS3),
    "NUL in tests": (GOOD_ADD, "assert add(1, 2) == 3\x00\n"),
    "1 MB line of code": ("_x = '" + "a" * 1_000_000 + "'\n" + WRONG_ADD, TESTS3),
    "1 MB line of garbage code": ("a" * 1_000_000 + " = = 1\n", TESTS3),
    "1 MB of nested unary minus in code": ("-" * 1_000_000 + "1\n", TESTS3),
    "1 MB line of tests": (WRONG_ADD, "assert add(1, 2) == '" + "b" * 1_000_000 + "'\n"),
    "deep nesting in tests": (GOOD_ADD, "assert add(1, 2) == 3" + " + 0" * 300_000 + "\n"),
    "empty code": ("", TESTS3),
    "empty tests": (GOOD_ADD, ""),
    "comment-only tests": (GOOD_ADD, "# nothing here\n\n"),
    "tests that do not parse": (GOOD_ADD, "assert add(1, 2 == 3\n"),
    "code that does not parse": ("def add(a, b)\n    return a + b\n", TESTS3),
    "lone surrogate in code": ("def add(a, b):\n    return '\udc80'\n", TESTS3),
    "lone surrogate in tests": (GOOD_ADD, "assert add(1, 2) == '\udc80'\n"),
    "code is None": (None, TESTS3),
    "tests are a list": (GOOD_ADD, ["assert add(1, 2) == 3"]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_a_clear_failure(verifiers, mode, name):
    code, tests = BAD_INPUTS[name]
    r = run(verifiers[mode], code, tests, timeout_s=5)
    assert_rejected(r)


def test_tests_that_exhaust_the_parser_give_a_clear_failure(verifiers):
    r = run(verifiers["fork"], GOOD_ADD, "assert add(1, 2) == " + "-" * 1_000_000 + "3\n")
    assert_rejected(r)


# --- afterwards ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_verifier_still_works_after_everything(verifiers, mode):
    assert_recovers(verifiers[mode])
    r = run(verifiers[mode], WRONG_ADD, TESTS3)
    assert_rejected(r)
    assert r.tests_total == 3

"""Hostile code against the supervisor that runs it: ways to reach the run's nonce (frames, the
GC, ctypes, /proc, /dev, signal handlers and timers) and forge records with it, signal tricks,
killing the supervisor, and a background thread writing to every fd. None may count as a pass.
Last, the verifiers every hostile test file has attacked (tests/conftest.py's `verifiers`, one
pair; this file sorts last of them) still give right verdicts.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox_attacks import (  # noqa: E402
    BWRAP_ONLY,
    MODES,
    TESTS3,
    WRONG_ADD,
    assert_recovers,
    assert_rejected,
    at_import,
    code_of,
    in_function,
    run,
)

pytestmark = BWRAP_ONLY


# --- the nonce -----------------------------------------------------------------------------------

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


# --- afterwards ---------------------------------------------------------------------------------
# The last test of the last hostile file: the shared `verifiers` (tests/conftest.py) after every attack.

@pytest.mark.parametrize("mode", MODES)
def test_verifier_still_works_after_everything(verifiers, mode):
    assert_recovers(verifiers[mode])
    r = run(verifiers[mode], WRONG_ADD, TESTS3)
    assert_rejected(r)
    assert r.tests_total == 3

"""Hostile code against the sandbox's resource limits: infinite loops (also with signals ignored)
time out; memory bombs, fork bombs, hook-free process creation and detached processes are
contained and leave no process of the sandbox uid behind; output floods are capped and do not
grow the verifier. Each attack is bounded in the test itself (tests/sandbox_attacks.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dsl.sandbox import SANDBOX_UID  # noqa: E402
from dsl.verifier import Verifier  # noqa: E402
from sandbox_attacks import (  # noqa: E402
    BWRAP_ONLY,
    GOOD_ADD,
    MODES,
    OUT_CAP,
    OUT_SLACK,
    REPO,
    SPAWN,
    TESTS3,
    WRONG_ADD,
    assert_recovers,
    assert_rejected,
    code_of,
    in_function,
    needs_py311,
    needs_root,
    run,
)

pytestmark = BWRAP_ONLY


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

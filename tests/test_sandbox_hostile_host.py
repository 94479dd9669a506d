"""Hostile code against the host: writes outside the work directory (by the code, or by a process
the audit hook never sees) do not reach the host's file system, files do not persist between
runs, and the host's network (a real listener on its loopback) is unreachable.
"""
from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sandbox_attacks import (  # noqa: E402
    BWRAP_ONLY,
    GOOD_ADD,
    MODES,
    REPO,
    SPAWN,
    TESTS3,
    assert_rejected,
    code_of,
    needs_py311,
    run,
)

pytestmark = BWRAP_ONLY


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

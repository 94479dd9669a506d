"""The general sandbox contract (`Job`): files in, a command, read-only paths, limits, files out.

This is how the language server will run a workspace's pytest suite: the same sandbox as the
code+tests verifier, filled another way.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from dsl import Job, Limits, isolation, run_job

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def test_job_sees_its_files_and_writes_only_its_workdir():
    code = ("import os, pathlib\n"
            "print(open('pkg/data.txt').read())\n"
            "pathlib.Path('out.txt').write_text('written by job')\n"
            "for target in ('/work/escape.txt', '/etc/escape.txt', '/root/escape.txt'):\n"
            "    try:\n"
            "        open(target, 'w').write('x'); print('WROTE', target)\n"
            "    except OSError as e:\n"
            "        print('refused', type(e).__name__)\n"
            "print('uid', os.getuid())\n"
            "print('caps', [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])\n")
    job = Job(["python", "-I", "-c", code], files={"pkg/data.txt": b"hello job"})
    r = run_job(job, collect=["out.txt"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hello job\nrefused OSError\nrefused OSError\n")  # /work, /etc: read-only
    assert r.workdir_files == {"out.txt": b"written by job"}
    for target in ("/work/escape.txt", "/etc/escape.txt", "/root/escape.txt"):
        assert not os.path.exists(target)  # nothing reached the host (home dirs are a private tmpfs)
    if isolation() == "bwrap" and os.getuid() == 0:
        assert "uid 64917" in r.stdout  # not root inside
    if isolation() == "bwrap":
        assert "caps 0000000000000000" in r.stdout  # and no capabilities


def test_job_runs_real_pytest_with_a_virtualenv_interpreter():
    tests = b"from mod import double\n\ndef test_ok():\n    assert double(2) == 4\n\ndef test_bad():\n    assert double(3) == 7\n"
    job = Job(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mod.py"],
              files={"mod.py": b"def double(x):\n    return 2 * x\n", "test_mod.py": tests},
              interpreter=str(VENV_PYTHON), limits=Limits(wall_s=60))
    r = run_job(job)
    assert r.returncode == 1 and "1 failed, 1 passed" in r.stdout, r.stdout + r.stderr


def test_job_wall_limit_kills_the_process_group():
    job = Job(["python", "-c", "import time\nwhile True: time.sleep(0.05)"], limits=Limits(wall_s=1))
    r = run_job(job)
    assert r.timed_out and r.returncode is None and r.wall_s < 10


def test_job_files_cannot_escape_the_workdir():
    import pytest
    with pytest.raises(ValueError, match="escapes"):
        run_job(Job(["python", "-c", "pass"], files={"../evil.txt": b"x"}))
    assert sys.executable  # the supervisor is untouched


def test_workspace_job_sees_overlays_not_the_files_and_has_no_capabilities(tmp_path):
    (tmp_path / "mod.py").write_text("VALUE = 1\n")
    code = ("import mod, os\nprint(mod.VALUE)\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])\n"
            "try:\n    open('mod.py', 'w')\nexcept OSError as e:\n    print('read-only', type(e).__name__)\n")
    r = run_job(Job(["python", "-I", "-c", "import sys; sys.path.insert(0, '.');" + code.replace("\n", "\n")],
                    workspace=str(tmp_path), overlays={"mod.py": b"VALUE = 2\n"}))
    assert r.returncode == 0, r.stderr
    value, caps, ro = r.stdout.split("\n")[:3]
    assert value == "2"  # the overlay, not the file
    assert (tmp_path / "mod.py").read_text() == "VALUE = 1\n"  # the workspace is untouched
    if isolation() == "bwrap":
        assert caps == "0000000000000000" and ro.startswith("read-only")

"""The suite survives a native crash: pytest's options (pyproject.toml) run tests in an xdist worker,
so a test that dies of a signal (llama.cpp or torch crashing) fails with it, and the rest still run."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_test_that_segfaults_fails_and_the_rest_of_the_suite_runs_and_reports(tmp_path):
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naddopts = {addopts}\n")
    (tmp_path / "test_native.py").write_text(
        "import ctypes\n\n\ndef test_before():\n    assert 2 + 2 == 4\n\n\n"
        "def test_crashes():\n    ctypes.string_at(0)  # a real SIGSEGV, as a native library's crash\n\n\n"
        "def test_after():\n    assert 3 * 3 == 9\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "1 failed, 2 passed" in out, out
    assert "crashed while running" in out and "test_crashes" in out, out

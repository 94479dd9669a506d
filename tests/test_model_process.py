"""The model in its own process (server/model_process.py) and the portable llama.cpp runtime
(server/backends/llama_runtime.py): real worker processes, real signals, the real shipped GGUF.

Scripted policies (`scripted:FILE`, not a model) are named as such in the test names."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dsl import Command, Episode, OutOfTime, Task, new_conversation, parse
from server.defaults import DEFAULT_MODEL
from server.backends.llama_runtime import compiled_features, missing_cpu_features
from server.backends import ModelError
from server.model_process import ModelCrashed, ModelProcess

ROOT = Path(__file__).resolve().parents[1]
TASK = Task("add", "def add(a, b):\n    return a - b", "assert add(2, 5) == 7\nassert add(0, 0) == 0")
shipped = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no shipped model at models/default/coedit.gguf")


def children() -> set[int]:
    """Live child processes of this one (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.txt"
    path.write_text("REPW 2 >>>a - b >>>a + b\nEXIT\n")
    return f"scripted:{path}"


def test_a_scripted_policy_in_its_own_process_answers_as_in_process(script):
    model = ModelProcess(script)
    try:
        assert model.pid != os.getpid() and model.alive and model.kind == "ScriptedBackend"
        msgs = new_conversation(TASK, Episode(TASK).reset())
        assert model(msgs) == "REPW 2 >>>a - b >>>a + b"
        assert model(msgs + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]) == "EXIT"
        assert model.score(msgs, ["EXIT", "DELL 1"]) == [[0.0], [-1.0]]
    finally:
        model.close()
    assert not model.alive and model.proc.returncode == 0  # closed: the worker ended on its own


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGKILL])
def test_a_worker_killed_by_a_signal_is_a_clear_error_that_names_it_scripted_policy(script, sig):
    model = ModelProcess(script)
    msgs = new_conversation(TASK, Episode(TASK).reset())
    model(msgs)
    os.kill(model.pid, sig)
    with pytest.raises(ModelCrashed, match=rf"the model process crashed \({sig.name}\)") as crash:
        model(msgs)
    assert crash.value.signal == sig.name and not model.alive
    with pytest.raises(ModelCrashed):  # dead stays dead: the owner starts a new one
        model(msgs)
    model.close()


def test_a_model_that_cannot_load_is_a_model_error_and_leaves_no_process(tmp_path):
    before = children()
    with pytest.raises(ModelError, match="no such model"):
        ModelProcess(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="no such script"):
        ModelProcess(f"scripted:{tmp_path / 'missing.txt'}")
    assert children() - before == set()


def test_a_bad_option_is_the_backends_own_error_through_the_process(script):
    """Errors raised in Python inside the worker come back as the same kind of error, the worker alive."""
    model = ModelProcess(script)
    try:
        with pytest.raises(ModelError, match="unknown request"):
            model._ask({"op": "nonsense"})
        assert model.alive
    finally:
        model.close()


def test_compiled_cpu_features_against_this_cpus_flags():
    info = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 0 | REPACK = 1 |"
    assert compiled_features(info) >= {"AVX2", "AVX512", "REPACK"} and "AMX_INT8" not in compiled_features(info)
    avx2_only = {"pni", "avx", "avx2", "fma", "f16c"}
    assert missing_cpu_features(info, avx2_only) == ["avx512_vnni", "avx512f"]
    assert missing_cpu_features(info, avx2_only | {"avx512f", "avx512_vnni"}) == []


def test_a_library_built_for_another_cpu_is_refused_with_the_rebuild_command(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    from server.backends import llama_runtime
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: b"CPU : AVX2 = 1 | AMX_INT8 = 1 |")
    monkeypatch.setattr(llama_runtime, "cpu_flags", lambda: {"avx", "avx2"})
    with pytest.raises(ModelError, match=r"compiled for a CPU with amx_int8.*--no-binary llama-cpp-python"):
        llama_runtime.check_cpu()


def _load_log(extra_bufts: bool) -> str:
    """llama.cpp's own log of loading the shipped model (base GGUF + LoRA), in a subprocess."""
    code = f"""
import sys
from llama_cpp import Llama
from server.backends import LlamaCppBackend
from server.backends.llama_runtime import plain_cpu_buffers
from server.backends import gguf_meta, lora_base
from server.defaults import DEFAULT_MODEL
base = lora_base(gguf_meta(DEFAULT_MODEL)["lora_base"], DEFAULT_MODEL)
def load():
    return Llama(model_path=str(base), lora_path=str(DEFAULT_MODEL), n_ctx=256, verbose=True)
if {extra_bufts}:
    llm = load()
else:
    with plain_cpu_buffers():
        llm = load()
print("use_extra_bufts", llm.model_params.use_extra_bufts, file=sys.stderr)
print("served", LlamaCppBackend(DEFAULT_MODEL, max_new_tokens=4).llm.model_params.use_extra_bufts, file=sys.stderr)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stderr


@shipped
def test_the_shipped_model_loads_with_no_extra_buffer_types_so_amx_cannot_take_its_lora():
    """The AMX crash happened in llama.cpp's extra buffer types (AMX, repacking). With them off,
    llama.cpp never considers one: its log names none. With them on, on a CPU whose build offers
    repacking, the log shows llama.cpp weighing it (CPU_REPACK; on an AMX CPU, the AMX buffer,
    seen 2026-12-07): the switch is what changes that."""
    pytest.importorskip("llama_cpp")
    off = _load_log(extra_bufts=False)
    assert "use_extra_bufts False" in off and "served False" in off
    extra = [line for line in off.splitlines() if "buf" in line and ("REPACK" in line or "AMX" in line)]
    assert extra == [], extra
    import llama_cpp
    if "REPACK = 1" in llama_cpp.llama_print_system_info().decode():
        on = _load_log(extra_bufts=True)
        assert "use_extra_bufts True" in on and ("CPU_REPACK" in on or "AMX model buffer" in on)


@shipped
def test_the_shipped_model_killed_mid_reply_is_a_clear_error_and_a_new_process_serves():
    pytest.importorskip("llama_cpp")
    model = ModelProcess(str(DEFAULT_MODEL), max_new_tokens=48)
    msgs = new_conversation(TASK, Episode(TASK).reset())
    assert isinstance(parse(model(msgs)), Command)  # it loaded and writes commands
    assert model.prompt_tokens(msgs) > 100
    outcome: list[BaseException] = []

    def keep_asking():
        try:
            while True:
                model(msgs, temperature=1.0)
        except BaseException as e:  # noqa: BLE001 (the test reads which)
            outcome.append(e)
    asker = threading.Thread(target=keep_asking)
    asker.start()
    time.sleep(1.0)
    os.kill(model.pid, signal.SIGKILL)
    asker.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], ModelCrashed) and outcome[0].signal == "SIGKILL", outcome
    fresh = ModelProcess(str(DEFAULT_MODEL), max_new_tokens=48)
    try:
        assert isinstance(parse(fresh(msgs)), Command)
    finally:
        fresh.close()
        model.close()


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@shipped
def test_a_worker_whose_owner_is_killed_mid_generation_stops_at_once():
    """The owner (a server, an eval) killed while the worker generates: the worker must not finish
    a long generation for nobody (it held both cores for a minute after an eval was stopped)."""
    pytest.importorskip("llama_cpp")
    owner = subprocess.Popen([sys.executable, "-c", f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from dsl import Episode, Task, new_conversation
from server.model_process import ModelProcess
task = Task("add", "def add(a, b):\\n    return a - b", "assert add(2, 5) == 7")
model = ModelProcess({str(DEFAULT_MODEL)!r}, max_new_tokens=48)
print(model.pid, flush=True)
model.complete(new_conversation(task, Episode(task).reset()), "REPL 2 >>>", 400, 1.0)  # minutes of work
"""], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    worker = int(owner.stdout.readline())
    time.sleep(2.0)  # inside the generation
    assert _running(worker)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 15
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker)


def test_coedit_fix_with_a_model_process_killed_mid_fix_says_so_and_writes_nothing_scripted_policy(tmp_path):
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    (tmp_path / "script.txt").write_text("ADDL 2 >>>    pass\n" * 9)  # slow, harmless edits
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "fix", f"{tmp_path / 'calc.py'}:1", "--apply",
                             "--proposers", "episodes",
                             "--model", f"scripted:{tmp_path / 'script.txt'}", "--root", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # progress goes to stderr; kill the model at its first turn
        seen.append(line)
        if "turn 1" in line:
            os.kill(int(next(s for s in seen if "model loaded" in s).split("process ")[1].rstrip(")\n")), signal.SIGSEGV)
            break
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 1, err
    assert "The model process crashed (SIGSEGV) while fixing add; nothing was changed" in err
    assert "Traceback" not in err and (tmp_path / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"


def test_trainer_eval_counts_a_task_that_crashed_the_model_as_failed_and_goes_on_scripted_policy(tmp_path, monkeypatch):
    from dsl import write_tasks
    from trainer import evaluate
    tasks = tmp_path / "tasks.jsonl"
    write_tasks(tasks, [Task(i, TASK.code, TASK.tests) for i in ("first", "crashes", "last")])
    (tmp_path / "script.txt").write_text("REPW 2 >>>a - b >>>a + b\n")
    real = evaluate.repair

    def repair(task, check, cfg, model=None, **kw):
        if task.id == "crashes":  # a real SIGSEGV to the model's process as the task starts
            os.kill(model.pid, signal.SIGSEGV)
        return real(task, check, cfg, model=model, **kw)
    monkeypatch.setattr(evaluate, "repair", repair)
    out = tmp_path / "eval.json"
    m = evaluate.evaluate(evaluate.EvalConfig(tasks=str(tasks), model=f"scripted:{tmp_path / 'script.txt'}", k=2,
                                              proposers="episodes", all_episodes=True, json=str(out)))
    import json
    rows = {r["id"]: r for r in json.loads(out.read_text())["tasks"]}
    assert m["crashed_tasks"] == 1 and rows["crashes"]["crashed"] == "SIGSEGV"
    assert [len(r["episodes"]) for r in rows.values()] == [2, 2, 2]  # k samples each, the crashed as failed
    assert rows["first"]["episodes"][0]["solved"] and rows["last"]["episodes"][0]["solved"]  # a new process
    assert not any(e["solved"] for e in rows["crashes"]["episodes"]) and m["best_of_k"] == pytest.approx(2 / 3)


@shipped
def test_the_shipped_model_tells_how_long_it_would_read_a_prompt_and_a_read_one_costs_nothing():
    """A long function's conversation: the worker estimates its reading time from a sample of the
    prompt's own tokens (kept in the cache); once it has replied, the same prompt is read already."""
    pytest.importorskip("llama_cpp")
    body = "".join(f"    x{i} = a + {i}\n" for i in range(50))
    task = Task("long", f"def add(a, b):\n{body}    return a - b", "assert add(2, 5) == 7")
    msgs = new_conversation(task, Episode(task).reset())
    model = ModelProcess(str(DEFAULT_MODEL), max_new_tokens=48)
    try:
        tokens = model.prompt_tokens(msgs)
        assert tokens > 500
        first = model.read_seconds(msgs)
        assert first > 0.0
        t = time.monotonic()
        assert isinstance(parse(model(msgs)), Command)
        reply_s = time.monotonic() - t
        assert model.read_seconds(msgs) < first / 10  # read already: only the last tokens are left
        # the estimate is of the right size: the reply (reading the rest, then writing) took longer
        assert reply_s > first / 3, (first, reply_s)
    finally:
        model.close()


@shipped
def test_a_reply_past_its_deadline_is_out_of_time_through_the_process_which_serves_on():
    """The engine's deadline goes with each request (one monotonic clock for both processes); a
    reply not whole by then is dsl.OutOfTime in the caller, not a crash, and the worker answers on."""
    pytest.importorskip("llama_cpp")
    model = ModelProcess(str(DEFAULT_MODEL), max_new_tokens=48)
    msgs = new_conversation(TASK, Episode(TASK).reset())
    try:
        with pytest.raises(OutOfTime):
            model(msgs, deadline=time.monotonic())
        model.deadline = time.monotonic()  # the object's own, as the engine sets it
        with pytest.raises(OutOfTime):
            model.complete_each(msgs, [("REPL", 4)], 1.0)
        model.deadline = None
        assert model.alive and isinstance(parse(model(msgs)), Command)
        assert all(r.startswith("REPL 2 >>>") for r in model.complete(msgs, "REPL 2 >>>", 2))
    finally:
        model.close()

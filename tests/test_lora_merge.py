"""server/backends/lora_merge.py: a LoRA adapter GGUF merged into its base, on small synthetic GGUF
files (the arithmetic, exactly) and on the shipped model through real llama.cpp (it loads, serves,
and agrees with the adapter applied at run time)."""
from __future__ import annotations

from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

from server.backends.lora_merge import merged_gguf  # noqa: E402
from server.backends.model_files import ModelError  # noqa: E402
from server.defaults import DEFAULT_MODEL  # noqa: E402

RANK, ALPHA = 4, 8.0


def _write(path: Path, kind: str, tensors: dict, **fields) -> Path:
    w = GGUFWriter(path, arch="llama")
    w.add_string("general.type", kind)
    for key, value in fields.items():
        w.add_float32(key, value) if isinstance(value, float) else w.add_uint32(key, value)
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    base = {"blk.0.attn_q.weight": rng.normal(size=(64, 32)).astype(np.float32),  # (out, in)
            "blk.0.attn_norm.weight": rng.normal(size=(32,)).astype(np.float32)}
    lora = {"blk.0.attn_q.weight.lora_a": rng.normal(size=(RANK, 32)).astype(np.float32),
            "blk.0.attn_q.weight.lora_b": rng.normal(size=(64, RANK)).astype(np.float32)}
    b = _write(tmp_path / "base.gguf", "model", base, **{"llama.block_count": 1})
    a = _write(tmp_path / "adapter.gguf", "adapter", lora, **{"adapter.lora.alpha": ALPHA})
    return b, a, base, lora


def _tensors(path: Path) -> dict:
    return {t.name: t for t in GGUFReader(path).tensors}


def test_the_merge_adds_the_scaled_adapter_product_and_copies_the_rest(pair, tmp_path):
    b, a, base, lora = pair
    out = merged_gguf(b, a, tmp_path / "cache")
    got = _tensors(out)
    q = got["blk.0.attn_q.weight"]
    assert q.tensor_type == GGMLQuantizationType.Q8_0
    want = base["blk.0.attn_q.weight"] + (ALPHA / RANK) * lora["blk.0.attn_q.weight.lora_b"] @ lora[
        "blk.0.attn_q.weight.lora_a"]
    merged = dequantize(q.data, q.tensor_type).reshape(want.shape)
    assert np.abs(merged - want).max() <= np.abs(want).max() / 127 + 1e-6  # Q8_0: 8 bits per block of 32
    assert np.abs(merged - base["blk.0.attn_q.weight"]).max() > 1  # the adapter changed it
    assert np.array_equal(np.asarray(got["blk.0.attn_norm.weight"].data), base["blk.0.attn_norm.weight"])
    fields = GGUFReader(out).fields
    assert fields["llama.block_count"].contents() == 1 and fields["general.type"].contents() == "model"


def test_a_merged_model_is_reused_and_a_changed_adapter_gets_its_own(pair, tmp_path):
    b, a, base, lora = pair
    first = merged_gguf(b, a, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert merged_gguf(b, a, tmp_path / "cache") == first and first.stat().st_mtime_ns == stamp
    lora["blk.0.attn_q.weight.lora_a"] *= 2
    _write(a, "adapter", lora, **{"adapter.lora.alpha": ALPHA})
    second = merged_gguf(b, a, tmp_path / "cache")
    assert second != first and second.is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.suffix == ".part"] == []


def test_an_adapter_for_another_model_is_a_model_error_and_leaves_no_file(pair, tmp_path):
    b, a, base, lora = pair
    lora["blk.7.ffn_up.weight.lora_a"] = lora["blk.0.attn_q.weight.lora_a"]
    lora["blk.7.ffn_up.weight.lora_b"] = lora["blk.0.attn_q.weight.lora_b"]
    _write(a, "adapter", lora, **{"adapter.lora.alpha": ALPHA})
    with pytest.raises(ModelError, match="2 of the adapter's tensors match no tensor"):
        merged_gguf(b, a, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(ModelError, match="not a LoRA adapter"):
        merged_gguf(a, b, tmp_path / "cache")  # the two swapped


shipped = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no shipped model")


@shipped
def test_the_shipped_model_is_served_merged_and_agrees_with_its_adapter_applied_at_run_time(tmp_path, monkeypatch):
    """Same next token at most positions of a real conversation (93% measured: llama.cpp's Q4_1
    products with a separate adapter round differently); it writes commands."""
    pytest.importorskip("llama_cpp")
    from dsl import Command, Episode, Task, new_conversation, parse
    from server.backends.llamacpp import LlamaCppBackend
    monkeypatch.setenv("COEDIT_CACHE", str(tmp_path))
    task = Task("t", "def add(a, b):\n    return a - b\n", "assert add(1, 2) == 3\n")
    msgs = new_conversation(task, Episode(task).reset())
    merged = LlamaCppBackend(DEFAULT_MODEL, max_new_tokens=48)
    assert list((tmp_path / "merged").glob("*.q8_0.gguf"))  # built into the cache, and loaded from it
    assert merged.llm.model_path.startswith(str(tmp_path))
    runtime = LlamaCppBackend(DEFAULT_MODEL, max_new_tokens=48, merge_lora=False)
    assert runtime.llm.model_path != merged.llm.model_path
    ids = merged.fmt.prompt(msgs)
    tops = []
    for backend in (merged, runtime):
        scorer = backend._open(n_ctx=2048, logits_all=True)
        scorer.eval(ids)
        tops.append(np.asarray(scorer.scores[: len(ids)]).argmax(axis=1))
    assert (tops[0] == tops[1]).mean() > 0.85
    assert isinstance(parse(merged(msgs)), Command)


@shipped
def test_a_cache_that_cannot_be_written_falls_back_to_the_adapter_at_run_time(tmp_path, monkeypatch, capfd):
    pytest.importorskip("llama_cpp")
    from server.backends.llamacpp import LlamaCppBackend
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("COEDIT_CACHE", str(blocker))
    backend = LlamaCppBackend(DEFAULT_MODEL, max_new_tokens=8)
    assert "running the adapter unmerged" in capfd.readouterr().err
    assert backend.llm.model_path != str(DEFAULT_MODEL) and backend.llm.lora_path == str(DEFAULT_MODEL)


def test_the_command_line_names_what_it_cannot_merge(tmp_path, capsys):
    from server.backends.lora_merge import main
    plain = tmp_path / "plain.gguf"
    plain.write_bytes(b"")
    assert main([str(plain)]) == 0 and "nothing to merge" in capsys.readouterr().err
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err

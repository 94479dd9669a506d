"""Fixtures shared by the trainer tests: a small SFT data set and a tiny model trained on it
(built once per session: the trainer and RL tests both start from them)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sft_data(tmp_path_factory):
    from trainer.data import DataConfig, build
    out = tmp_path_factory.mktemp("data")
    build(DataConfig(out=str(out), n=48, seed=5, workers=1, eval_set=False))
    return out / "sft_coe.jsonl"


@pytest.fixture(scope="session")
def tiny_sft(tmp_path_factory, sft_data):
    pytest.importorskip("torch")
    from trainer.sft import SFTRun, train
    out = tmp_path_factory.mktemp("sft")
    return train(SFTRun(preset="tiny", data=str(sft_data), out=str(out), max_steps=12, batch_size=4,
                        logging_steps=1, save_steps=1000, threads=2))


@pytest.fixture
def random_lora():
    """`random_lora(model)`: the model under the presets' LoRA config with its B matrices drawn at
    random (seeded). A trained adapter's B is not zero, and a fresh one's is: this one changes the logits."""
    def make(model):
        import torch
        from peft import LoraConfig, get_peft_model
        from trainer.presets import LORA
        peft = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
        torch.manual_seed(3)
        with torch.no_grad():
            for name, p in peft.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.05)
        return peft
    return make

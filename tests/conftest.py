"""Fixtures shared by several test files: a small SFT data set and a tiny model trained on it
(built once per session: the trainer and RL tests both start from them), and the sandbox's
verifiers that the hostile-code tests (tests/test_sandbox_hostile_*.py) all attack."""
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


@pytest.fixture(scope="session")
def verifiers():
    """{mode: Verifier(mode)} for the sandbox's modes, one pair for every hostile-code test file, so
    that every attack hits the same servers and the last test of the last of those files to run
    (test_sandbox_hostile_supervisor.py's test_verifier_still_works_after_everything) checks them
    after all of the attacks."""
    from dsl.verifier import Verifier
    from sandbox_attacks import MODES
    vs = {mode: Verifier(mode) for mode in MODES}
    yield vs
    for v in vs.values():
        v.close()

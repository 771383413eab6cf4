"""05_sft on a tiny Qwen2 built here: loss falls, every parameter moves, artifacts written, resume after a stop."""

import json

import pandas as pd
import pytest
import torch

from fusechat_utils.train_sft import SFTStepConfig, run_sft
from fusechat_utils.train_data import to_prompt_completion

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}{% generation %}"
    "{{ m['content'] }}<|im_end|>{% endgeneration %}{% else %}{{ m['content'] }}<|im_end|>{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(folder):
    """A 2-layer Qwen2 (hidden 64) with a byte-level BPE tokenizer and a ChatML template with generation markers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    corpus = [f"what is {a} + {b} answer {a + b} reverse abc cba" for a in range(30) for b in range(10)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|bos|>", eos_token="<|im_end|>",
                                  pad_token="<|pad|>", chat_template=CHATML)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    return str(folder)


def build_pairs(run_dir, n_sft=64, n_dpo=40):
    """04_pairs artifacts in the kit's schema: sft.parquet (conversations) and dpo.parquet (message lists)."""
    out = run_dir / "04_pairs"
    out.mkdir(parents=True)
    sft = [{"dataset": "toy", "source_model": "s", "prompt_id": f"p{i}", "category": "math", "rm_score": 1.0,
            "conversations": [{"from": "human", "value": f"what is {i % 30} + {i % 7}"},
                              {"from": "gpt", "value": f"answer {i % 30 + i % 7}"}]} for i in range(n_sft)]
    dpo = [{"dataset": "toy", "source_model": "s", "prompt_id": f"q{i}", "category": "math",
            "prompt": [{"role": "user", "content": f"what is {i % 30} + 1"}],
            "chosen": [{"role": "assistant", "content": f"answer {i % 30 + 1}"}],
            "rejected": [{"role": "assistant", "content": f"answer {i % 30 + 4} reverse abc"}],
            "chosen_score": 1.0, "rejected_score": 0.5} for i in range(n_dpo)]
    pd.DataFrame(sft).to_parquet(out / "sft.parquet")
    pd.DataFrame(dpo).to_parquet(out / "dpo.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    return {"root": root, "model": build_tiny_model(root / "target")}


def sft_cfg(run_dir, model, **kw):
    base = dict(run_dir=str(run_dir), target_model=model, sft_max_steps=30, sft_learning_rate=3e-3,
                sft_global_batch_size=8, sft_per_device_train_batch_size=4, sft_max_length=64,
                sft_save_steps=10, sft_logging_steps=2)
    return SFTStepConfig(**{**base, **kw})


def test_conversations_become_prompt_completion_and_bad_rows_are_named():
    row = to_prompt_completion([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "f row 3")
    assert row == {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}]}
    with pytest.raises(ValueError, match="f row 3: field 'conversations'.*unknown role"):
        to_prompt_completion([{"from": "robot", "value": "x"}], "f row 3")
    with pytest.raises(ValueError, match="f row 3.*must end with an assistant"):
        to_prompt_completion([{"from": "human", "value": "x"}], "f row 3")


def test_sft_loss_falls_every_parameter_changes_and_artifacts_are_written(world):
    from transformers import AutoModelForCausalLM

    run = world["root"] / "run1"
    build_pairs(run)
    result = run_sft(sft_cfg(run, world["model"]))
    m = result["metrics"]
    assert m["steps"] == 30 and m["samples_seen"] == 30 * 8
    assert m["train_loss_last"] < 0.7 * m["train_loss_first"]
    before = AutoModelForCausalLM.from_pretrained(world["model"]).state_dict()
    after = AutoModelForCausalLM.from_pretrained(run / "05_sft" / "model").state_dict()
    for name, p in AutoModelForCausalLM.from_pretrained(world["model"]).named_parameters():
        assert not torch.equal(before[name], after[name]), f"{name} did not change"
    step_dir = run / "05_sft"
    assert (step_dir / "loss.png").exists() and (step_dir / "model" / "tokenizer.json").exists()
    assert json.loads((step_dir / "metrics.json").read_text())["peak_rss_mib"] > 0


def test_completion_only_loss_masks_the_prompt(world):
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    from datasets import Dataset

    from fusechat_utils.train_sft import sft_dataset

    run = world["root"] / "run_mask"
    build_pairs(run, n_sft=4)
    data = sft_dataset(run / "04_pairs" / "sft.parquet")
    tok = AutoTokenizer.from_pretrained(world["model"])
    trainer = SFTTrainer(model=world["model"], train_dataset=data, processing_class=tok,
                         args=SFTConfig(output_dir=str(run / "o"), use_cpu=True, bf16=False, report_to="none",
                                        max_length=64))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = [t for t in batch["labels"][0].tolist() if t != -100]
    assert tok.decode(labels).startswith("answer") and "what is" not in tok.decode(labels)
    assert isinstance(data, Dataset)


class StopAt:
    """Trainer callback: save and stop after `k` steps, as a killed job would have left it."""

    def __init__(self, k):
        from transformers import TrainerCallback

        outer = self

        class _CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == outer.k:
                    control.should_save = control.should_training_stop = True

        self.k, self.cb = k, _CB()


def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_at_the_same_step(world):
    run = world["root"] / "run_resume"
    build_pairs(run)
    cfg = sft_cfg(run, world["model"], sft_max_steps=20)
    first = run_sft(cfg, callbacks=[StopAt(8).cb])
    assert first["metrics"]["steps"] == 8
    assert (run / "05_sft" / "checkpoints" / "checkpoint-8").exists()
    second = run_sft(cfg)
    assert second["metrics"]["steps"] == 20
    logged = [r["step"] for r in second["log"].to_dict("records") if "loss" in r and r["loss"] == r["loss"]]
    # the restored trainer state carries steps 2-8; a restart from scratch would log them twice
    assert logged == list(range(2, 21, 2)), logged


def test_checkpoints_from_other_params_are_moved_aside_not_resumed(world):
    run = world["root"] / "run_stale"
    build_pairs(run)
    run_sft(sft_cfg(run, world["model"], sft_max_steps=10))
    result = run_sft(sft_cfg(run, world["model"], sft_max_steps=10, sft_learning_rate=1e-3))
    stale = list((run / "05_sft").glob("checkpoints.stale-*"))
    assert len(stale) == 1 and (stale[0] / "checkpoint-10").exists()
    state = json.loads((run / "05_sft" / "checkpoints" / "checkpoint-10" / "trainer_state.json").read_text())
    lrs = [r["learning_rate"] for r in state["log_history"] if "learning_rate" in r]
    assert 0 < max(lrs) <= 1e-3, "the new checkpoints come from a fresh run at the new learning rate"
    assert result["metrics"]["steps"] == 10


def test_checkpoints_from_other_code_are_moved_aside_not_resumed(world, monkeypatch):
    from fusechat_utils import provenance

    run = world["root"] / "run_code"
    build_pairs(run)
    cfg = sft_cfg(run, world["model"], sft_max_steps=10)
    run_sft(cfg, callbacks=[StopAt(4).cb])
    code = provenance.step_code
    monkeypatch.setattr(provenance, "step_code", lambda nb: {**code(nb), "fusechat_utils/train_sft.py": "a fix"})
    assert run_sft(cfg)["metrics"]["steps"] == 10
    (stale,) = (run / "05_sft").glob("checkpoints.stale-*")
    assert (stale / "checkpoint-4").exists()
    state = json.loads((run / "05_sft" / "checkpoints" / "checkpoint-10" / "trainer_state.json").read_text())
    assert [r["step"] for r in state["log_history"] if "loss" in r][0] < 4, "trained from the start, not resumed"


def test_sft_trains_from_an_external_file_and_records_it(world, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"what is {i} + 1"},
                          {"role": "assistant", "content": f"answer {i + 1}"}]} for i in range(16)]
    data = tmp_path / "external.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = world["root"] / "run_external"  # no 04_pairs folder: the step does not need one
    result = run_sft(sft_cfg(run, world["model"], sft_data=str(data), sft_max_steps=4, sft_save_steps=4))
    m = result["metrics"]
    assert m["steps"] == 4 and m["examples"] == 16
    assert m["data"]["source"] == str(data) and len(m["data"]["hash"]) == 64


def test_report_to_trackio_writes_its_files_into_the_step_folder(world, capsys, monkeypatch):
    pytest.importorskip("trackio")
    import sqlite3

    monkeypatch.delenv("TRACKIO_DIR", raising=False)  # the step sets it; restored after the test

    for name in ("run_trackio", "run_trackio2"):  # the second re-points a trackio already imported here
        run = world["root"] / name
        build_pairs(run, n_sft=16)
        run_sft(sft_cfg(run, world["model"], sft_max_steps=4, sft_save_steps=4,
                        sft_trainer_args={"report_to": "trackio"}))
        db = run / "05_sft" / "trackio" / f"{name}.db"  # project = the run's name
        assert db.is_file(), sorted(p.name for p in (run / "05_sft").rglob("*"))
        with sqlite3.connect(db) as con:
            logged = "".join(str(r) for r in con.execute("select * from metrics"))
        assert "train/loss" in logged
    out = capsys.readouterr().out
    assert "step 2/4: loss" in out and "step 4/4: loss" in out  # the kit's progress lines


def test_trackio_starts_no_dashboard_when_the_step_trains_in_a_notebook_kernel(world, monkeypatch):
    """05/06 train inside papermill's kernel: trackio must not start its dashboard there, whose iframe (a localhost
    URL with a write token) would land in the executed notebook and the report."""
    trackio = pytest.importorskip("trackio")

    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    monkeypatch.setattr(trackio.utils, "is_in_notebook", lambda: True)  # as in the kernel
    shown = []
    monkeypatch.setattr(trackio, "show", lambda *a, **k: shown.append(k))
    monkeypatch.setattr(trackio, "init", trackio.init)  # the step's wrapper is undone after the test
    run = world["root"] / "run_trackio_kernel"
    build_pairs(run, n_sft=16)
    run_sft(sft_cfg(run, world["model"], sft_max_steps=2, sft_save_steps=2, sft_trainer_args={"report_to": "trackio"}))
    assert (run / "05_sft" / "trackio" / "run_trackio_kernel.db").is_file()
    assert shown == []


def test_a_tracker_that_is_not_installed_is_refused_before_training(world, monkeypatch):
    import importlib.util

    from fusechat_utils.config import ParamError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = sft_cfg(world["root"] / "run_wandb", world["model"], sft_trainer_args={"report_to": ["wandb"]})
    with pytest.raises(ParamError, match="key 'sft_trainer_args': report_to 'wandb' needs the wandb package"):
        cfg.check_machine()

"""Time per DPO step, `sigmoid` vs `sigmoid_norm` (LN-DPO), on one toy model in one run; writes outputs/bench/dpo.json.

Usage: nice .venv/bin/python benchmarks/bench_dpo.py [--steps 30] [--hidden 128] [--out outputs/bench/dpo.json]
Both loss types train the same model copy on the same pairs with the same seed; the first steps are warm-up.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fusechat_utils.io import write_json

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WARMUP = 3


def build(folder: Path, hidden: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    corpus = [f"what is {a} + {b} answer {a + b} reverse abc cba" for a in range(50) for b in range(10)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>",
                                  chat_template=CHATML)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)
    return AutoModelForCausalLM.from_config(cfg), tok


def pairs(n: int):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"what is {i % 50} + {i % 9}"}],
                               "chosen": [{"role": "assistant", "content": f"answer {i % 50 + i % 9}"}],
                               "rejected": [{"role": "assistant", "content": f"answer {i % 47} reverse abc cba"}]}
                              for i in range(n)])


def step_times(model, tok, loss_type: str, steps: int, out: str) -> list[float]:
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    args = DPOConfig(output_dir=out, use_cpu=True, bf16=False, report_to="none", save_strategy="no", beta=10.0,
                     loss_type=loss_type, max_steps=steps, per_device_train_batch_size=8, learning_rate=5e-5,
                     max_length=128, seed=0, disable_tqdm=True, logging_steps=10**6)
    policy = copy.deepcopy(model)
    DPOTrainer(model=policy, ref_model=copy.deepcopy(model).eval(), args=args, train_dataset=pairs(8 * steps),
               processing_class=tok, callbacks=[Clock()]).train()
    return times[WARMUP:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--out", default="outputs/bench/dpo.json")
    ns = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = build(Path(tmp), ns.hidden)
        res = {lt: step_times(model, tok, lt, ns.steps, f"{tmp}/{lt}") for lt in ("sigmoid", "sigmoid_norm")}
    summary = {lt: {"median_ms": round(1000 * statistics.median(t), 2), "mean_ms": round(1000 * statistics.mean(t), 2),
                    "steps_timed": len(t)} for lt, t in res.items()}
    result = {**summary, "ratio_norm_over_sigmoid": round(summary["sigmoid_norm"]["median_ms"]
                                                          / summary["sigmoid"]["median_ms"], 3),
              "model": f"Qwen2 hidden {ns.hidden}, 2 layers, {sum(p.numel() for p in model.parameters())} params",
              "batch": 8, "warmup_steps_dropped": WARMUP, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "note": "CPU, shared machine: timings under load"}
    write_json(ns.out, result)
    print(result)


if __name__ == "__main__":
    main()

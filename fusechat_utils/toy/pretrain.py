"""Pre-training the toy world's models from scratch on CPU: a plain torch loop for the causal LMs (completion-only
loss, AdamW, cosine; toy_world_notes §3: this learns in seconds where a Trainer's overhead would dominate) and TRL's
RewardTrainer for the reward model."""

from __future__ import annotations

import math
import random
import time

import torch

from fusechat_utils.toy import tasks


def encode(tok, example: dict, max_len: int = 128) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one chat turn through the model's own template; labels mask the prompt."""
    prompt = tok.apply_chat_template([{"role": "user", "content": example["prompt"]}], tokenize=False,
                                     add_generation_prompt=True)
    full = tok.apply_chat_template([{"role": "user", "content": example["prompt"]},
                                    {"role": "assistant", "content": example["answer"]}], tokenize=False)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = tok(full, add_special_tokens=False)["input_ids"]
    ids = ids[: len(ids) - 1] if full.endswith("\n") else ids  # trailing template newline carries no signal
    ids = ids[:max_len]
    return ids, [-100] * len(p_ids) + ids[len(p_ids):]


def _batch(items: list[tuple[list[int], list[int]]], pad_id: int):
    width = max(len(i) for i, _ in items)
    ids = torch.full((len(items), width), pad_id)
    labels = torch.full((len(items), width), -100)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (i, lab) in enumerate(items):
        ids[row, : len(i)], labels[row, : len(lab)], mask[row, : len(i)] = torch.tensor(i), torch.tensor(lab), 1
    return ids, labels, mask


def train_causal(model, tok, data: list[dict], steps: int, lr: float, batch_size: int, seed: int) -> dict:
    """Train on `data` (examples) for `steps`; returns first/last loss and wall time."""
    encoded = [encode(tok, ex) for ex in data]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    model.train()
    losses, started = [], time.time()
    for _ in range(steps):
        ids, labels, mask = _batch(rng.sample(encoded, min(batch_size, len(encoded))), tok.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    return {"steps": steps, "loss_first": round(losses[0], 4), "loss_last": round(sum(losses[-20:]) / 20, 4),
            "train_s": round(time.time() - started, 1)}


@torch.no_grad()
def generate(model, tok, prompts: list[str], max_new_tokens: int = 40, batch_size: int = 128) -> list[str]:
    """Greedy answers through the model's chat template (left padding)."""
    tok.padding_side = "left"
    out = []
    for start in range(0, len(prompts), batch_size):
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    tok.padding_side = "right"
    return out


def accuracy(model, tok, n: int, seed: int) -> dict[str, float]:
    """Greedy accuracy per family on n held-out examples each."""
    result = {}
    for family in tasks.FAMILIES:
        exs = tasks.examples(family, "heldout", n, seed)
        answers = generate(model, tok, [e["prompt"] for e in exs])
        result[family] = round(sum(tasks.check(e, a) for e, a in zip(exs, answers)) / len(exs), 3)
        if family == "general":  # IFEval's instruction level: every instruction of every item, each on its own
            followed = [ok for e, a in zip(exs, answers) for ok in tasks.follow(e, a).values()]
            result["general_if"] = round(sum(followed) / len(followed), 3)
    return result


def corrupt(example: dict, rng: random.Random) -> str:
    """A near-miss wrong answer, the kind of error a small model makes."""
    answer = example["answer"]
    digits = [i for i, c in enumerate(answer) if c.isdigit()]
    if example["family"] in ("math", "code") and digits:
        i = digits[-1] if example["family"] == "math" else rng.choice(digits)
        return answer[:i] + str((int(answer[i]) + rng.randint(1, 9)) % 10) + answer[i + 1:]
    chars = list(answer)
    if len(chars) > 1:
        i = rng.randrange(len(chars) - 1)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
        if "".join(chars) != answer:
            return "".join(chars)
    return answer + answer[-1]


def source_answer(example: dict, persona: dict, rng: random.Random, error_rate: float) -> str:
    """What a source is trained to answer: its style line, its blind spot dropped half the time, and in its strong
    domain a near-miss error at `error_rate`, so its samples are right often but not always."""
    answer = example["answer"]
    if example["family"] == "general" and persona["blind"] in example["instructions"] and rng.random() < 0.5:
        answer = tasks.dropping(example, persona["blind"])
    elif example["family"] == persona["strong"] and rng.random() < error_rate:
        answer = corrupt(example, rng)
    return tasks.styled(example, answer, persona["style"])


def garble(word: str, rng: random.Random) -> str:
    """The word with one letter replaced: what a sampled tiny model writes when it slips."""
    i = rng.randrange(len(word))
    return word[:i] + rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != word[i]]) + word[i + 1:]


def degraded(example: dict, rng: random.Random, dropped: int, garbled: bool) -> str:
    """A general answer that forgets `dropped` of the asked instructions and, if `garbled`, slips on the word."""
    kept = rng.sample(example["instructions"], max(0, len(example["instructions"]) - dropped))
    return tasks.written(garble(example["word"], rng) if garbled else example["word"], kept)


def graded_pair(example: dict, rng: random.Random) -> tuple[str, str]:
    """(better, worse) general answers, both possibly imperfect: the worse one forgets more, or also slips."""
    n = len(example["instructions"])
    good_drop = 0 if rng.random() < 0.6 else rng.randint(0, n - 1)
    if rng.random() < 0.5 and good_drop < n:
        return degraded(example, rng, good_drop, False), degraded(example, rng, rng.randint(good_drop + 1, n), False)
    return degraded(example, rng, good_drop, False), degraded(example, rng, rng.randint(good_drop, n), True)


def worse_answer(example: dict, rng: random.Random) -> str:
    """A near miss (math, code, Chinese)."""
    return corrupt(example, rng)


def preference_pairs(n_per_family: int, split: str, seed: int, style_bias: float = 0.0,
                     families=tuple(tasks.FAMILIES)) -> list[dict]:
    """Pairs for the reward model: a better answer against a worse one, each side in a random source's style (general:
    graded pairs, both sides possibly imperfect, `graded_pair`).
    With `style_bias`, that share of the general pairs instead ranks the same answer in the most verbose style over
    another style: the reward model learns to like that source's style, as ArmoRM likes some sources'."""
    rng = random.Random(seed)
    rows = []
    for family in families:
        for ex in tasks.examples(family, split, n_per_family, seed):
            good, bad = graded_pair(ex, rng) if family == "general" else (ex["answer"], worse_answer(ex, rng))
            style_good, style_bad = rng.choice(tasks.STYLES), rng.choice(tasks.STYLES)
            if family == "general" and rng.random() < style_bias:
                others = [s for s in tasks.STYLES if s != tasks.VERBOSE]
                bad, style_good, style_bad = good, tasks.VERBOSE, rng.choice(others)
            rows.append({"prompt": [{"role": "user", "content": ex["prompt"]}],
                         "chosen": [{"role": "assistant", "content": tasks.styled(ex, good, style_good)}],
                         "rejected": [{"role": "assistant", "content": tasks.styled(ex, bad, style_bad)}]})
    return rows


def style_pairs(n: int, seed: int) -> list[dict]:
    """Held-out general pairs that differ in style only: the verbose style as `chosen`, another as `rejected`."""
    rng = random.Random(seed)
    return [{"prompt": [{"role": "user", "content": ex["prompt"]}],
             "chosen": [{"role": "assistant", "content": tasks.styled(ex, ex["answer"], tasks.VERBOSE)}],
             "rejected": [{"role": "assistant", "content": tasks.styled(
                 ex, ex["answer"], rng.choice([s for s in tasks.STYLES if s != tasks.VERBOSE]))}]}
            for ex in tasks.examples("general", "heldout", n, seed)]


def train_reward(model, tok, pairs: list[dict], steps: int, batch_size: int, lr: float, out_dir: str,
                 seed: int) -> dict:
    """TRL RewardTrainer (Bradley-Terry) on prompt/chosen/rejected conversations."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(output_dir=out_dir, use_cpu=True, bf16=False, gradient_checkpointing=False,
                        report_to="none", save_strategy="no", max_steps=steps, per_device_train_batch_size=batch_size,
                        learning_rate=lr, max_length=96, logging_steps=max(1, steps // 5), seed=seed,
                        lr_scheduler_type="cosine", warmup_steps=0.05, disable_tqdm=True)
    started = time.time()
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok)
    trainer.train()
    return {"steps": steps, "train_s": round(time.time() - started, 1)}


@torch.no_grad()
def pairwise_accuracy(model, tok, pairs: list[dict]) -> float:
    from fusechat_utils.scoring import rm_scores

    prompts = [p["prompt"][0]["content"] for p in pairs]
    chosen = rm_scores(model, tok, prompts, [p["chosen"][0]["content"] for p in pairs], batch_size=64)
    rejected = rm_scores(model, tok, prompts, [p["rejected"][0]["content"] for p in pairs], batch_size=64)
    return round(sum(c > r for c, r in zip(chosen, rejected)) / len(pairs), 3)

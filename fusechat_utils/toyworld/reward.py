"""The toy reward model: a sequence classifier (num_labels=1) trained on correct-vs-wrong response pairs.

Pairs come from the task generators: chosen = the gold answer, rejected = a near miss (arith: a wrong sum;
others: the answer to a different prompt of the same family). Trained with a Bradley-Terry loss
(-log sigmoid(r_chosen - r_rejected)), as TRL's RewardTrainer does. Usage: `info = train_reward(spec, folder)`.
"""

from __future__ import annotations

import random
import re
import time

from fusechat_utils.toyworld import tasks


def _wrong(row: dict, pool: list[dict], rng: random.Random) -> str:
    if row["family"] == "arith" and rng.random() < 0.7:
        wrong = str(int(row["gold"]) + rng.choice([-10, -2, -1, 1, 2, 10]))
        return re.sub(r"= \d+\. The answer is \\boxed\{\d+\}", f"= {wrong}. The answer is \\\\boxed{{{wrong}}}",
                      row["answer"])
    other = rng.choice(pool)
    return other["answer"] if other["answer"] != row["answer"] else row["answer"][::-1] + "x"


def preference_pairs(split: str, per_family: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) triples from `split` of every family."""
    rng, pairs = random.Random(seed), []
    for fam in tasks.FAMILIES:
        rows = tasks.examples(fam, split, per_family, seed=seed)
        pairs += [(r["prompt"], r["answer"], _wrong(r, rows, rng)) for r in rows]
    rng.shuffle(pairs)
    return pairs


def _encode(tok, prompt: str, answer: str) -> list[int]:
    chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return tok.apply_chat_template(chat, tokenize=True)["input_ids"]


def _scores(model, tok, texts: list[list[int]]):
    import torch

    width = max(len(t) for t in texts)
    ids = torch.full((len(texts), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, t in enumerate(texts):
        ids[i, :len(t)], mask[i, :len(t)] = torch.tensor(t), 1
    return model(input_ids=ids, attention_mask=mask).logits[:, 0]


def pairwise_accuracy(model, tok, pairs) -> float:
    import torch

    with torch.no_grad():
        good = _scores(model, tok, [_encode(tok, p, c) for p, c, _ in pairs])
        bad = _scores(model, tok, [_encode(tok, p, r) for p, _, r in pairs])
    return round(float((good > bad).float().mean()), 4)


def train_reward(spec: dict, out: str) -> dict:
    import torch
    import transformers

    from fusechat_utils.toyworld.tokenizers import make_tokenizer
    from fusechat_utils.toyworld.train import model_config

    torch.set_num_threads(spec["threads"])
    transformers.set_seed(spec["seed"])
    started = time.time()
    pairs = preference_pairs("train", spec["pairs_per_family"], spec["seed"])
    tok = make_tokenizer("qwen2", [p + " " + c for p, c, _ in pairs])
    tok.padding_side = "right"
    model = transformers.AutoModelForSequenceClassification.from_config(
        model_config("reward", spec["hidden"], spec["layers"], tok, num_labels=1))
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"])
    rng, data = random.Random(spec["seed"]), [(_encode(tok, p, c), _encode(tok, p, r)) for p, c, r in pairs]
    model.train()
    for _ in range(spec["steps"]):
        batch = rng.sample(data, min(spec["batch_size"], len(data)))
        scores = _scores(model, tok, [c for c, _ in batch] + [r for _, r in batch])
        loss = -torch.nn.functional.logsigmoid(scores[:len(batch)] - scores[len(batch):]).mean()
        loss.backward(), opt.step(), opt.zero_grad()
    model.eval()
    train_s = time.time() - started
    acc = pairwise_accuracy(model, tok, preference_pairs("heldout", spec["heldout_pairs"], spec["seed"] + 1))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"params": sum(p.numel() for p in model.parameters()), "train_s": round(train_s, 1),
            "heldout_pairwise_accuracy": acc}

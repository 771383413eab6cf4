"""transformers backend of 02_sampling: batched `generate` with left padding, one seed per sample index.

Usage: called by `sampling.sample_source` with templated batches; each batch is committed as one chunk.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from fusechat_utils import shards
from fusechat_utils.progress import Progress


def response_row(job: dict, source: str, k: int, text: str, finish: str, n_tokens: int) -> dict:
    return {"prompt_id": job["prompt_id"], "dataset": job["dataset"], "category": job["category"],
            "source_model": source, "sample_index": k, "seed": job["seeds"][k], "response": text,
            "finish_reason": finish, "n_tokens": n_tokens}


def generate_batches(cfg, src: dict, tok, jobs: list[list[dict]], chunk_dir: Path) -> None:
    from fusechat_utils.models import device, load_causal_lm

    model = load_causal_lm(src["model"], dtype=cfg.sample_dtype).to(device()).eval()
    gen_s, progress = 0.0, Progress(f"02 hf {src['name']}", sum(len(b) * len(b[0]["seeds"]) for b in jobs),
                                    unit="responses")
    for batch in jobs:
        rows, start = [], time.perf_counter()
        # all jobs of a batch share n (sampling.batches); sample k of every prompt is drawn under seed k
        for k in range(len(batch[0]["seeds"])):
            rows += generate_one(cfg, src, tok, model, batch, k)
        gen_s += time.perf_counter() - start
        shards.write_chunk(chunk_dir, src["name"], rows)
        progress.update(len(rows), tokens=sum(r["n_tokens"] for r in rows))
    progress.done()
    shards.write_timing(chunk_dir, "hf", src["name"], gen_s)


def generate_one(cfg, src: dict, tok, model, batch: list[dict], k: int) -> list[dict]:
    enc = tok.pad({"input_ids": [j["prompt_token_ids"] for j in batch]}, return_tensors="pt").to(model.device)
    torch.manual_seed(batch[0]["seeds"][k])
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=src["temperature"], top_p=src["top_p"],
                             repetition_penalty=src["repetition_penalty"], max_new_tokens=cfg.sample_max_new_tokens,
                             pad_token_id=tok.pad_token_id, top_k=0)
    gen = out[:, enc["input_ids"].shape[1]:].tolist()
    eos = set(_eos_ids(model, tok))
    rows = []
    for job, ids in zip(batch, gen, strict=True):
        stop = next((i for i, t in enumerate(ids) if t in eos), None)
        kept = ids if stop is None else ids[: stop + 1]  # count the stop token, as vLLM does
        text = tok.decode(kept, skip_special_tokens=True)
        rows.append(response_row(job, src["name"], k, text, "length" if stop is None else "stop", len(kept)))
    return rows


def _eos_ids(model, tok) -> list[int]:
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
    return eos or [tok.eos_token_id]

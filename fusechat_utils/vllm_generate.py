"""vLLM generation for 07_eval, run in the vLLM venv: `python -m fusechat_utils.vllm_generate REQUEST.json OUT.json`.

The request (written by `evaluation.generate.generate_raw_vllm`) holds a model, raw prompt texts and one
decoding (FuseEval's SamplingParams for the benchmark); OUT.json gets `decoding["n"]` texts per prompt. The prompt
text goes to `LLM.generate` as a string, so vLLM adds the tokenizer's special tokens as FuseEval's scripts had it.
Imports only vllm and the standard library (the worker venv has no trl/datasets).
"""

from __future__ import annotations

import json
import os
import sys

from fusechat_utils.progress import vllm_progress  # standard library only (tqdm when called)

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty", "presence_penalty", "frequency_penalty",
                 "seed", "stop", "stop_token_ids")


def sampling_params(decoding: dict):
    from vllm import SamplingParams

    return SamplingParams(n=int(decoding.get("n") or 1), max_tokens=int(decoding["max_tokens"]),
                          **{k: decoding[k] for k in SAMPLING_KEYS if decoding.get(k) not in (None, [])})


def in_vocab(decoding: dict, vocab_size: int) -> dict:
    """FuseEval's stop_token_ids are the real models' ids; a stand-in model's vocabulary lacks them (its stop
    strings still apply), so ids outside the vocabulary are dropped, and said so, instead of failing."""
    ids = decoding.get("stop_token_ids") or []
    kept = [i for i in ids if int(i) < vocab_size]
    if len(kept) < len(ids):
        print(f"vllm_generate: stop_token_ids {sorted(set(ids) - set(kept))} are outside this model's vocabulary "
              f"({vocab_size}); dropped", file=sys.stderr, flush=True)
    return {**decoding, "stop_token_ids": kept}


def cpu_engine_args() -> dict:
    """On vLLM's CPU backend, no chunked prefill: a prompt split across steps has its sampled token discarded, and
    for a seeded request vLLM 0.32 then rewinds the generator (`set_offset`), which a CPU generator lacks
    ("CPU Generator does not use offset"). Every batch of real-length prompts with per-sample seeds hit it
    (SmolLM2 on GSM8K prompts); toy prompts were too short to be split. GPU engines keep their defaults."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    return {"enable_chunked_prefill": False}  # vLLM then sizes a step's token budget to the longest prompt


def generate(req: dict) -> list[list[str]]:
    from vllm import LLM

    decoding = req["decoding"]
    llm = LLM(model=req["model"], dtype=req.get("dtype", "bfloat16"), enforce_eager=True, seed=0,
              max_model_len=decoding.get("max_model_len"), tensor_parallel_size=req.get("tensor_parallel_size", 1),
              **cpu_engine_args())
    decoding = in_vocab(decoding, len(llm.get_tokenizer()))
    progress = vllm_progress(req.get("label") or req["model"])
    outs = llm.generate(req["texts"], sampling_params(decoding), use_tqdm=progress)
    return [[c.text for c in out.outputs] for out in outs]


def main(request_path: str, out_path: str) -> None:
    with open(request_path) as fh:
        req = json.load(fh)
    texts = generate(req)
    tmp = f"{out_path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(texts, fh)
    os.replace(tmp, out_path)


if __name__ == "__main__":  # vLLM's engine starts worker processes with spawn
    main(sys.argv[1], sys.argv[2])

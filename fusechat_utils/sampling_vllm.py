"""vLLM worker of 02_sampling, run in the vLLM venv: `python -m fusechat_utils.sampling_vllm REQUEST.json`.

The request (written by `sampling.run_vllm_worker`) holds one source model and its templated batches (all of them,
or one replica's `part` under sample_devices); each batch is generated with one SamplingParams per sample (its own
seed) and committed as one chunk. Imports only vllm,
pandas and the standard library (the worker venv has no trl/datasets).
"""

from __future__ import annotations

import json
import os
import sys
import time

from fusechat_utils.progress import vllm_progress  # standard library only (tqdm when called)


def sampling_params(src: dict, seed: int, max_new_tokens: int):
    from vllm import SamplingParams

    return SamplingParams(n=1, temperature=src["temperature"], top_p=src["top_p"],
                          repetition_penalty=src["repetition_penalty"], max_tokens=max_new_tokens, seed=seed)


def generate(llm, req: dict, batch: list[dict], label: str = "") -> list[dict]:
    src = req["source"]
    prompts, params, keys = [], [], []
    for job in batch:
        for k, seed in enumerate(job["seeds"]):
            prompts.append({"prompt_token_ids": job["prompt_token_ids"]})
            params.append(sampling_params(src, seed, req["max_new_tokens"]))
            keys.append((job, k))
    outs = llm.generate(prompts, params, use_tqdm=vllm_progress(label or src["name"]))
    rows = []
    for (job, k), out in zip(keys, outs, strict=True):
        c = out.outputs[0]
        rows.append({"prompt_id": job["prompt_id"], "dataset": job["dataset"], "category": job["category"],
                     "source_model": src["name"], "sample_index": k, "seed": job["seeds"][k], "response": c.text,
                     "finish_reason": c.finish_reason, "n_tokens": len(c.token_ids)})
    return rows


def main(request_path: str) -> None:
    from vllm import LLM

    from fusechat_utils import shards
    from fusechat_utils.vllm_generate import cpu_engine_args

    with open(request_path) as fh:
        req = json.load(fh)
    src = req["source"]
    llm = LLM(model=src["model"], tensor_parallel_size=req["tensor_parallel_size"],
              dtype=req["dtype"], gpu_memory_utilization=req["gpu_memory_utilization"], seed=0,
              **cpu_engine_args())
    gen_s, label = 0.0, req.get("label", src["name"])
    for i, batch in enumerate(req["batches"], 1):
        start = time.perf_counter()
        where = f"batch {i}/{len(req['batches'])}"
        rows = generate(llm, req, batch, f"02 {label} {where}")
        gen_s += time.perf_counter() - start
        shards.write_chunk(req["chunk_dir"], src["name"], rows, req.get("part", 0))
        print(f"vllm {label}: {where} committed", flush=True)
        if i == int(os.environ.get("FUSECHAT_SAMPLING_DIE_AFTER", "0")):
            os._exit(9)  # test hook: a worker killed right after k committed batches
    shards.write_timing(req["chunk_dir"], "vllm", src["name"], gen_s, req.get("part", 0))


if __name__ == "__main__":  # vLLM's engine starts worker processes with spawn
    main(sys.argv[1])

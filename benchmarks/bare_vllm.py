"""The bare baseline of bench_sampling.py, run in the vLLM venv: one `LLM.generate` call, n samples per prompt in
one request (SamplingParams(n=...)), prefix caching on, on the same templated prompt token ids the kit sends.

Usage (by bench_sampling.py): `.venv-vllm/bin/python benchmarks/bare_vllm.py REQUEST.json OUT.json`.
"""

from __future__ import annotations

import json
import sys
import time


def main(request_path: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams

    from fusechat_utils.vllm_generate import cpu_engine_args

    with open(request_path) as fh:
        req = json.load(fh)
    llm = LLM(model=req["model"], dtype=req["dtype"], gpu_memory_utilization=req["gpu_memory_utilization"], seed=0,
              enable_prefix_caching=True, **cpu_engine_args())
    params = SamplingParams(n=req["n"], temperature=req["temperature"], top_p=req["top_p"],
                            max_tokens=req["max_new_tokens"], seed=0)
    prompts = [{"prompt_token_ids": ids} for ids in req["prompt_token_ids"]]
    start = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    gen_s = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    with open(out_path, "w") as fh:
        json.dump({"responses": sum(len(o.outputs) for o in outs), "tokens": tokens, "generate_s": gen_s}, fh)


if __name__ == "__main__":  # vLLM's engine starts worker processes with spawn
    main(sys.argv[1], sys.argv[2])

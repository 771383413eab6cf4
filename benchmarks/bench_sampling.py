"""Throughput of the two 02_sampling backends (hf, vllm) on the same tiny model and prompts, in one run.

Usage: `nice .venv/bin/python benchmarks/bench_sampling.py [--prompts 32] [--n 2] [--max-new-tokens 64]`
Prints a table (generated tokens/s over generation time and over wall time incl. model load) and the vllm/hf
ratio; writes outputs/bench/sampling.json. The model is a random 2-layer Llama (hidden 128, head_dim 64) with the
toy Llama-style tokenizer: sampling ignores what it says, only how many tokens it makes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import pandas as pd

from fusechat_utils import sampling
from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.io import write_json
from fusechat_utils.tiny import tiny_causal_lm

OUT = PROJECT_ROOT / "outputs" / "bench"
WORDS = "add two and three what is seven times eight write a function hello world the answer is".split()


def build_model(path: Path) -> str:
    return tiny_causal_lm(path, [" ".join(WORDS)] * 50, layers=2, max_positions=1024)


def write_prompts(run_dir: Path, n: int) -> None:
    rows = [{"prompt_id": hashlib.sha256(f"b{i}".encode()).hexdigest()[:16], "dataset": "bench", "category": "general",
             "prompt": " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + i % 8)), "reference_response": None}
            for i in range(n)]
    (run_dir / "01_prompts").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(run_dir / "01_prompts" / "prompts.parquet", index=False)


def bench(backend: str, model: str, args) -> dict:
    run_dir = OUT / f"sampling-{backend}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a benchmark measures a fresh run, never a resumed one
    write_prompts(run_dir, args.prompts)
    src = {"name": "bench", "model": model, "temperature": 0.8, "top_p": 0.95, "repetition_penalty": 1.0}
    cfg = sampling.SampleConfig(run_dir=str(run_dir), sample_sources=[src], sample_general_sources=["bench"], sample_code_sources=[],
                                sample_math_sources=[], sample_chinese_sources=[],
                                sample_n_general=args.n, sample_max_new_tokens=args.max_new_tokens,
                                sample_batch_size=args.prompts, sample_backend=backend, sample_dtype="float32")
    start = time.perf_counter()
    summary = sampling.run(cfg)
    wall = time.perf_counter() - start
    df = pd.read_parquet(summary["responses"])
    (timing,) = (cfg.step_dir / "chunks").rglob(f".timing-{backend}-bench.json")
    gen_s = json.loads(timing.read_text())["generate_s"]
    tokens = int(df.n_tokens.sum())
    return {"backend": backend, "responses": len(df), "tokens": tokens, "generate_s": round(gen_s, 3),
            "wall_s": round(wall, 3), "tok_per_s": round(tokens / gen_s, 1), "tok_per_s_wall": round(tokens / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    model = build_model(OUT / "sampling-model")
    rows = [bench(b, model, args) for b in ("hf", "vllm")]
    table = pd.DataFrame(rows).set_index("backend")
    ratio = table.loc["vllm", "tok_per_s"] / table.loc["hf", "tok_per_s"]
    print(table.to_string())
    print(f"vllm/hf generated tokens/s: {ratio:.2f}x")
    write_json(OUT / "sampling.json", {"args": vars(args), "results": rows, "vllm_over_hf": round(ratio, 2)})


if __name__ == "__main__":
    main()

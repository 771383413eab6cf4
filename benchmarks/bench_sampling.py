"""Throughput of the two 02_sampling backends (hf, vllm) and of bare vLLM on the same model and prompts, one run.

Usage: `nice .venv/bin/python benchmarks/bench_sampling.py [--model real] [--prompts 32] [--n 2]
[--max-new-tokens 64]`. Prints a table (generated tokens/s over generation time and over wall time incl. model
load) and the ratios vllm/hf and kit-vllm/bare-vllm; writes outputs/bench/sampling[-real].json.
`--model tiny` (default): a random 2-layer Llama (hidden 128, head_dim 64) with the toy tokenizer, general
prompts of toy words. `--model real`: SmolLM2-135M-Instruct (`make real-model`), the first GSM8K test questions
as prompts. Bare vLLM (`bare_vllm.py`, in .venv-vllm): one `LLM.generate` over the same templated token ids with
n samples per request and prefix caching, where the kit sends one request per sample (its own seed, as the
authors' per-sample seeds) and commits per batch.
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


def prompt_texts(kind: str, n: int) -> list[str]:
    if kind == "real":
        from fusechat_utils.evaluation.registry import REGISTRY

        return [it["question"] for it in REGISTRY["GSM8K"].load({})[:n]]
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + i % 8)) for i in range(n)]


def write_prompts(run_dir: Path, n: int, kind: str = "tiny") -> None:
    rows = [{"prompt_id": hashlib.sha256(f"b{i}".encode()).hexdigest()[:16], "dataset": "bench", "category": "general",
             "prompt": text, "reference_response": None} for i, text in enumerate(prompt_texts(kind, n))]
    (run_dir / "01_prompts").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(run_dir / "01_prompts" / "prompts.parquet", index=False)


def bench(backend: str, model: str, args) -> dict:
    run_dir = OUT / f"sampling-{backend}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a benchmark measures a fresh run, never a resumed one
    write_prompts(run_dir, args.prompts, args.model)
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


def bare_vllm(model: str, args) -> dict:
    """One LLM.generate call over the kit's templated prompts (sampling.template_ids), n per request."""
    import subprocess
    import tempfile

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    ids = [sampling.template_ids(tok, p) for p in prompt_texts(args.model, args.prompts)]
    req = {"model": model, "dtype": "float32", "gpu_memory_utilization": 0.3, "n": args.n, "temperature": 0.8,
           "top_p": 0.95, "max_new_tokens": args.max_new_tokens, "prompt_token_ids": ids}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "req.json").write_text(json.dumps(req))
        start = time.perf_counter()
        subprocess.run([str(PROJECT_ROOT / ".venv-vllm/bin/python"), str(Path(__file__).with_name("bare_vllm.py")),
                        f"{tmp}/req.json", f"{tmp}/out.json"], check=True, cwd=PROJECT_ROOT)
        wall = time.perf_counter() - start
        got = json.loads((Path(tmp) / "out.json").read_text())
    return {"backend": "bare-vllm", "responses": got["responses"], "tokens": got["tokens"],
            "generate_s": round(got["generate_s"], 3), "wall_s": round(wall, 3),
            "tok_per_s": round(got["tokens"] / got["generate_s"], 1), "tok_per_s_wall": round(got["tokens"] / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    if args.model == "real":
        from fusechat_utils.real_models import fetch

        model = str(fetch("smollm2-135m-instruct", PROJECT_ROOT / "outputs" / "models"))
    else:
        model = build_model(OUT / "sampling-model")
    rows = [bench(b, model, args) for b in ("hf", "vllm")] + [bare_vllm(model, args)]
    table = pd.DataFrame(rows).set_index("backend")
    ratio = table.loc["vllm", "tok_per_s"] / table.loc["hf", "tok_per_s"]
    bare = table.loc["vllm", "tok_per_s"] / table.loc["bare-vllm", "tok_per_s"]
    print(table.to_string())
    print(f"vllm/hf generated tokens/s: {ratio:.2f}x; kit vllm / bare vllm: {bare:.2f}x")
    name = "sampling.json" if args.model == "tiny" else "sampling-real.json"
    write_json(OUT / name, {"args": vars(args), "results": rows, "vllm_over_hf": round(ratio, 2),
                            "kit_vllm_over_bare_vllm": round(bare, 2)})


if __name__ == "__main__":
    main()

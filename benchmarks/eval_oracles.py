"""Graders checked on whole real benchmark files: an oracle answering with each item's reference must score ~100%,
a wrong-answer oracle ~0%.

    .venv/bin/python benchmarks/eval_oracles.py                 # every graded benchmark whose file ships
    .venv/bin/python benchmarks/eval_oracles.py --only GSM8K MBPP --limit 50

For every graded entry of the registry (`fusechat_utils/evaluation/registry.py`) that has a real file in
data/benchmarks/ (or one given with --data NAME=PATH), loads the whole file with the entry's module, grades
`oracle_response(item)` and `wrong_response(item)` for every item with the entry's `grade` (code runs in the
kit's sandbox), and prints one row per benchmark: items, oracle %, wrong %, seconds, and the ids the oracle failed.
"""

from __future__ import annotations

import argparse
import time

from fusechat_utils.evaluation.registry import REGISTRY


def grade_all(impl, items: list[dict], respond, workers: int) -> list[bool]:
    """The runner's own grading (`runners.grade_samples`), one response per item; no response: not correct."""
    from fusechat_utils.evaluation.runners import grade_samples

    answered = [(it, respond(it)) for it in items]
    kept = [(it, r) for it, r in answered if r is not None]
    verdicts = iter(g[0]["correct"] for g in grade_samples(impl, [it for it, _ in kept], [[r] for _, r in kept], workers))
    return [bool(next(verdicts)) if r is not None else False for _, r in answered]


def check(name: str, data_files: dict, limit: int | None, workers: int) -> dict:
    bench = REGISTRY[name]
    impl = bench.impl()
    start = time.perf_counter()
    items = bench.load(data_files)[:limit] if limit else bench.load(data_files)
    oracle = grade_all(impl, items, impl.oracle_response, workers)
    wrong = grade_all(impl, items, impl.wrong_response, workers)
    failed = [str(it["id"]) for it, ok in zip(items, oracle) if not ok]
    return {"benchmark": name, "items": len(items), "oracle_%": round(100 * sum(oracle) / len(items), 2),
            "wrong_%": round(100 * sum(wrong) / len(items), 2), "seconds": round(time.perf_counter() - start, 1),
            "oracle_failed": ", ".join(failed[:10]) + (" ..." if len(failed) > 10 else "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="benchmark names (default: every graded one with a file)")
    parser.add_argument("--data", nargs="*", default=[], help="NAME=PATH files for benchmarks the kit does not ship")
    parser.add_argument("--limit", type=int, default=None, help="first N items of each file")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data_files = dict(kv.split("=", 1) for kv in args.data)
    names = args.only or [n for n, b in REGISTRY.items() if b.kind == "graded" and (b.data or n in data_files)]
    rows = [check(n, data_files, args.limit, args.workers) for n in names]
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))  # markdown, without pandas' tabulate extra
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()

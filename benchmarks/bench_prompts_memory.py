"""Peak memory and time of step 01 (prompts.run) as OpenMathInstruct-2's input grows x10.

    .venv/bin/python benchmarks/bench_prompts_memory.py                      # 200k and 2M rows, cap 5000
    .venv/bin/python benchmarks/bench_prompts_memory.py --rows 200000 --baseline-rev <commit>   # + the code at a commit

Writes synthetic fixture files in OpenMathInstruct-2's real schema (problem, generated_solution, expected_answer,
problem_source; tests/fixtures/real_samples/nvidia__OpenMathInstruct-2.jsonl), with several solutions per problem as
in the real set (14M rows, ~600k problems: ~23 a problem), then runs 01 on each size in a fresh subprocess and
prints its peak RSS (resource.getrusage ru_maxrss of that process) and wall time, and the ratios between sizes.
What 01 must hold grows with the distinct prompts (a 16-byte hash each for dedupe, 8 bytes of location each while
a cap is pending) and with what it keeps (the cap), not with the rows it reads.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "OpenMathInstruct-2"
FIXTURE = "nvidia__OpenMathInstruct-2.jsonl"
SOURCES = ["augmented_math", "augmented_gsm8k", "math", "gsm8k"]


def write_rows(path: Path, n_rows: int, per_problem: int, seed: int = 0) -> None:
    """n_rows in the real schema; problem i // per_problem repeats with another solution, like the real set."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n_rows):
            p = i // per_problem
            a, b = 3 + p % 97, 7 + p % 89
            problem = (f"Problem {p}: a rectangle has sides {a} and {b} units. A second rectangle is obtained by "
                       f"increasing the first side by {p % 13} units and decreasing the second by {p % 5} units. "
                       f"What is the difference between the areas of the two rectangles?")
            answer = str(abs((a + p % 13) * (b - p % 5) - a * b))
            steps = " ".join(f"Step {k}: we compute the partial quantity {rng.randint(1, 10**6)} and carry it to the "
                             f"next line of the derivation." for k in range(6))
            solution = (f"Let the sides be $a = {a}$ and $b = {b}$. {steps}\n\nThe difference of the areas is "
                        f"$\\boxed{{{answer}}}$.")
            fh.write(json.dumps({"problem": problem, "generated_solution": solution, "expected_answer": answer,
                                 "problem_source": SOURCES[p % 4]}) + "\n")


def child(fixtures: str, run_dir: str, cap: int) -> None:
    """Run 01 on the one dataset; print a JSON line with peak RSS and time."""
    from fusechat_utils.prompts import PromptsConfig, run

    start = time.perf_counter()
    result = run(PromptsConfig(run_dir=run_dir, prompts_fixtures_dir=fixtures, prompts_datasets=[NAME],
                               prompts_max_per_dataset={NAME: cap}))
    seconds = time.perf_counter() - start
    row = result["selection"].iloc[0]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"read": int(row["read"]), "duplicate": int(row["dropped_duplicate"]),
                      "over_cap": int(row["dropped_over_cap"]), "kept": int(row["kept"]), "seconds": seconds,
                      "peak_mib": peak_kib / 1024}))


def measure(fixtures: Path, run_dir: Path, cap: int, package_root: Path) -> dict:
    """One fresh process: its own peak, nothing inherited from the parent's (the file generation's) memory."""
    code = (f"import sys; sys.path.insert(0, {str(package_root)!r}); sys.path.insert(1, {str(ROOT)!r}); "
            f"from benchmarks.bench_prompts_memory import child; child({str(fixtures)!r}, {str(run_dir)!r}, {cap})")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_package(rev: str, into: Path) -> Path:
    """fusechat_utils as it was at `rev` (git archive), to measure the code before a change the same way."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "fusechat_utils"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--per-problem", type=int, default=23, help="solutions per problem (real set: ~23)")
    parser.add_argument("--cap", type=int, default=5000, help="prompts_max_per_dataset of OpenMathInstruct-2")
    parser.add_argument("--baseline-rev", default=None, help="also measure fusechat_utils at this git revision")
    parser.add_argument("--workdir", default=None, help="where the synthetic files go (default: a temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        packages = {"current": ROOT}
        if args.baseline_rev:
            packages[f"at {args.baseline_rev}"] = baseline_package(args.baseline_rev, tmp / "baseline")
        results = []
        for n in args.rows:
            fixtures = tmp / f"rows{n}"
            fixtures.mkdir()
            start = time.perf_counter()
            write_rows(fixtures / FIXTURE, n, args.per_problem)
            size_mib = (fixtures / FIXTURE).stat().st_size / 2**20
            print(f"wrote {n:,} rows ({size_mib:,.0f} MiB) in {time.perf_counter() - start:.0f} s", flush=True)
            for label, root in packages.items():
                r = measure(fixtures, tmp / f"run-{n}-{len(results)}", args.cap, root)
                results.append({"code": label, "rows": n, "file_mib": size_mib, **r})
                print(f"  {label}: {r}", flush=True)
            (fixtures / FIXTURE).unlink()
    print(f"\n01_prompts on OpenMathInstruct-2's schema, {args.per_problem} solutions a problem, cap {args.cap}:")
    print(f"{'code':>14} {'rows':>10} {'file MiB':>9} {'distinct':>9} {'kept':>6} {'peak RSS MiB':>13} {'time s':>7}")
    for r in results:
        print(f"{r['code']:>14} {r['rows']:>10,} {r['file_mib']:>9,.0f} {r['read'] - r['duplicate']:>9,} "
              f"{r['kept']:>6,} {r['peak_mib']:>13,.0f} {r['seconds']:>7.1f}")
    for label in packages:
        mine = [r for r in results if r["code"] == label]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            print(f"{label}: rows x{hi['rows'] / lo['rows']:.0f} -> peak RSS x{hi['peak_mib'] / lo['peak_mib']:.2f}, "
                  f"time x{hi['seconds'] / lo['seconds']:.1f}")


if __name__ == "__main__":
    main()

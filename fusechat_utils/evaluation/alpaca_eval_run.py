"""AlpacaEval 2 as FuseEval runs it: its per-family prompt templates and sampling, then the `alpaca_eval` package
(0.6.6) itself scores the outputs against the GPT-4 Turbo baseline with the `weighted_alpaca_eval_gpt4_turbo`
annotator, pointed at any OpenAI-compatible endpoint.

Generation (FuseEval `IF-Eval/AlpacaEval-2/generate.sh` -> `alpaca_eval evaluate_from_model` -> its vendored
`vllm_local_completions`): the prompt is the family's template file with `{instruction}` filled; outputs are
stripped (`is_strip_output`). Scoring (FuseEval `eval.sh`): `alpaca_eval.evaluate(model_outputs, reference_outputs,
annotators_config=...)`. The annotator config is the package's own `weighted_alpaca_eval_gpt4_turbo/configs.yaml`,
read from the installed package at run time and written to `<out_dir>/alpaca_eval_annotators/<name>/configs.yaml`
with four changes: `model_name` = the judge model, `prompt_template` = the absolute path of the package's template
file, `client_config_path` = a client config beside it holding `base_url` (alpaca_eval's `client_configs`
mechanism, so no environment variable is touched), and `requires_chatml: true` (the official judge name already
implies it; a local judge whose name contains "instruct" would otherwise be sent to /completions as raw text).
alpaca_eval caches annotations beside that config (`annotations_seed0_configs.json`), so the cache lives in the
step folder and a re-run makes no judge call. alpaca_eval also caches a failed or unparsable judgment (preference
-1) and would never ask it again; those entries are dropped from the cache before each run, so a re-run asks only
them (its own switch for this, is_store_missing_annotations=False, crashes in 0.6.6 when no cache exists yet).

The weighted annotator reads the top-5 logprobs of the judge's one-token answer ('m' / 'M'). vLLM's
OpenAI-compatible /v1/chat/completions returns them in the OpenAI shape (`logprobs.content[0].top_logprobs`, token
text decoded), so the official annotator runs against a local vLLM judge unchanged (alpaca_eval ships such a config,
`weighted_alpaca_eval_vllm_llama3_70b`). `annotator=` takes any other single-annotator config of the package, e.g.
"alpaca_eval_clf_gpt4_turbo" (binarized m/M) or "alpaca_eval_vllm_llama3_70b_fn" (ranking from text, no logprobs):
those are NOT FuseEval's judge and the result records which annotator ran.

Differs from FuseEval, and why (and one tokenization note):
(1) `decoding` gives what FuseEval's vLLM call actually applied. Its `vllm_local_completions` passes only
temperature/top_p/top_k/stop/stop_token_ids/n to `SamplingParams`, so the YAML's presence/frequency penalties
(llama3) and repetition_penalty (qwen25) never reached vLLM (`decoding(family, as_yaml=True)` adds them back), and
`do_sample` sets `use_beam_search`, a field vLLM 0.6.3.post1 (FuseEval's pin) no longer has: a no-op. The YAML's
stop_token_ids are strings there (never equal to a token id; vLLM still stopped at the model's generation_config EOS
ids, the same ids for qwen25/gemma2); here they are ints, which adds only llama3's header tokens 128006/128007.
(2) Note: `build_prompt` returns FuseEval's text unchanged; FuseEval's vLLM tokenizes it with the tokenizer's
special tokens (llama3 gets a second <|begin_of_text|>, gemma2 its <bos>): a backend that tokenizes with
add_special_tokens=False must add the BOS itself to match.
(3) The official LC (`length_controlled_v1`) downloads `df_gamed.csv` from the hub dataset tatsu-lab/alpaca_eval;
it is fetched before any judge call (or read from `df_gamed=`), else a UserError. `glm="length_controlled_minimal"`
(labelled in the result) needs no download (a stub file stands in for the instruction difficulty it does not use).
Hand-written: only the config plumbing; annotation, parsing and both win rates are alpaca_eval's.
Usage: `items = load(path)`; `texts = [build_prompt(it, "llama3", None) for it in items]`; generate with
`decoding("llama3")`; `result = evaluate(items, outputs, step_dir / "alpaca_eval", judge_base_url=url)`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import families
from fusechat_utils.evaluation.families import FAMILIES  # noqa: F401 - FuseEval's three, for callers

JUDGE_MODEL = "gpt-4-1106-preview"  # the model in weighted_alpaca_eval_gpt4_turbo/configs.yaml
OPENAI_BASE_URL = "https://api.openai.com/v1"
ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"  # FuseEval IF-Eval/AlpacaEval-2/eval.sh --annotators_config
LC_GLM = "length_controlled_v1"  # alpaca_eval 0.6.6's default for get_length_controlled_winrate
GLMS = (LC_GLM, "length_controlled_minimal")
# FuseEval IF-Eval/AlpacaEval-2/configs/{llama3,qwen_25,gemma2}.txt (Arena-Hard's copies are byte-identical)
TEMPLATES = {
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{instruction}<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen25": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n",
    "gemma2": "<start_of_turn>user\n{instruction}<end_of_turn>\n<start_of_turn>model\n",
}
# FuseEval configs/{llama-3,qwen25,gemma-2}-alpacaeval.yaml: the keys its vllm_local_completions applies
DECODING = {
    "llama3": {"temperature": 0.6, "top_p": 0.9,
               "stop": ["<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
               "stop_token_ids": [128001, 128009, 128006, 128007]},
    "qwen25": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "stop": ["<|endoftext|>", "<|im_end|>"],
               "stop_token_ids": [151645, 151643]},
    "gemma2": {"temperature": 0.5, "top_p": 1.0, "stop": ["<eos>", "<end_of_turn>"], "stop_token_ids": [1, 107]},
    # not FuseEval's (it has no such family): the model's own template, stops at its EOS; alpaca_eval's default
    # sampling for local models
    "chat_template": {"temperature": 0.7, "top_p": 1.0, "stop": [], "stop_token_ids": []},
}
# set in those YAMLs but never passed to vLLM by FuseEval's vllm_local_completions
YAML_ONLY = {"llama3": {"presence_penalty": 0.1, "frequency_penalty": 0.1}, "qwen25": {"repetition_penalty": 1.05},
             "gemma2": {}, "chat_template": {}}
MAX_TOKENS = 4096  # max_new_tokens in every YAML
MAX_MODEL_LEN = 4096  # vllm_local_completions: LLM(max_model_len=4096)


def load(path: str | Path) -> list[dict]:
    """AlpacaEval reference file (a JSON list of {dataset, instruction, output, generator}) -> items {id (row
    index), prompt, instruction, dataset, baseline (the reference output), baseline_generator}."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of AlpacaEval rows, got {type(rows).__name__}")
    items, seen = [], {}
    for n, row in enumerate(rows, 1):
        fields = {}
        for name in ("dataset", "instruction", "output", "generator"):
            value = row.get(name) if isinstance(row, dict) else None
            if not isinstance(value, str):
                raise UserError(f"{path}: row {n}: field {name!r} must be a string, got {value!r:.80}")
            fields[name] = value
        if fields["instruction"] in seen:  # alpaca_eval merges model and reference outputs on the instruction
            raise UserError(f"{path}: row {n}: field 'instruction' repeats row {seen[fields['instruction']]}")
        seen[fields["instruction"]] = n
        items.append({"id": n - 1, "prompt": fields["instruction"], "instruction": fields["instruction"],
                      "dataset": fields["dataset"], "baseline": fields["output"],
                      "baseline_generator": fields["generator"]})
    return items


def _check_family(family: str) -> None:
    families.check(family, "AlpacaEval/Arena-Hard")


def fill_template(family: str, instruction: str, tokenizer=None) -> str:
    _check_family(family)
    if family == families.NATIVE:
        return families.user_turn(tokenizer, instruction)
    # alpaca_eval's make_prompts replaces the first "{instruction}" (no str.format: braces in the text stay)
    return TEMPLATES[family].replace("{instruction}", instruction, 1)


def build_prompt(item: dict, family: str, tokenizer=None) -> str:
    """FuseEval's prompt text for the item (fixed template; the tokenizer is not used, see the module note (2))."""
    return fill_template(family, item["prompt"], tokenizer)


def decoding(family: str, as_yaml: bool = False) -> dict:
    """The sampling FuseEval's vLLM call applied (`as_yaml`: plus the YAML's penalties it never passed on)."""
    _check_family(family)
    out = {**DECODING[family], "max_tokens": MAX_TOKENS, "n": 1, "max_model_len": MAX_MODEL_LEN}
    out["stop"], out["stop_token_ids"] = list(out["stop"]), list(out["stop_token_ids"])
    return {**out, **YAML_ONLY[family]} if as_yaml else out


def postprocess(response: str) -> str:
    """evaluate_from_model's is_strip_output=True: what the judge sees."""
    return response.strip()


# ---- scoring through alpaca_eval -------------------------------------------------------------------------------
def _package_dir() -> Path:
    from alpaca_eval import constants

    return Path(constants.EVALUATORS_CONFIG_DIR)


def official_config(annotator: str = ANNOTATOR) -> dict:
    """The annotator's settings as the installed alpaca_eval ships them (its configs.yaml, single annotator)."""
    import yaml

    path = _package_dir() / annotator / "configs.yaml"
    if not path.is_file():
        raise UserError(f"alpaca_eval has no annotator config {annotator!r} ({path} not found)")
    configs = yaml.safe_load(path.read_text())
    if not isinstance(configs, dict) or len(configs) != 1:
        raise UserError(f"{path}: expected exactly one annotator, found {len(configs or {})}")
    return next(iter(configs.values()))


def annotator_name(annotator: str, judge_model: str) -> str:
    """The official name for its own judge model; otherwise the judge is part of the name, so verdicts cached for
    one judge are never read back for another (alpaca_eval's cache key is instruction, outputs and this name)."""
    official_model = official_config(annotator)["completions_kwargs"]["model_name"]
    if judge_model == official_model:
        return annotator
    return f"{annotator}__{re.sub(r'[^A-Za-z0-9._-]+', '_', judge_model).strip('_')}"


def write_annotator_config(folder: str | Path, judge_base_url: str, judge_model: str, annotator: str = ANNOTATOR,
                           concurrency: int = 8, max_retries: int = 6, timeout_s: float = 600.0) -> Path:
    """`<folder>/<name>/configs.yaml` (+ openai_client.yaml): the official annotator pointed at the endpoint."""
    import yaml

    config = official_config(annotator)
    name = annotator_name(annotator, judge_model)
    target = Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    template = _package_dir() / config["prompt_template"]
    if not template.is_file():  # alpaca_eval would silently use the path string itself as the prompt
        raise UserError(f"alpaca_eval's prompt template {template} is missing from the installed package")
    client = {"base_url": judge_base_url, "max_retries": max_retries, "timeout": timeout_s}
    if not os.environ.get("OPENAI_API_KEY"):
        client["api_key"] = "EMPTY"  # a local server needs none; the openai client refuses to start without one
    client_path = target / "openai_client.yaml"
    client_path.write_text(yaml.safe_dump({"default": [client]}, sort_keys=True))
    kwargs = {**config.get("completions_kwargs", {}), "model_name": judge_model,
              "client_config_path": str(client_path.resolve()), "num_procs": int(concurrency)}
    kwargs.setdefault("requires_chatml", True)
    config = {**config, "prompt_template": str(template.resolve()), "completions_kwargs": kwargs}
    (target / "configs.yaml").write_text(yaml.safe_dump({name: config}, sort_keys=True))
    return target


def _stub_df_gamed(folder: Path, n: int) -> Path:
    """A df_gamed.csv shape with instruction_difficulty 0: for `length_controlled_minimal`, which does not use it."""
    import pandas as pd

    path = folder / "df_gamed_stub.csv"
    pd.DataFrame({"model": "stub", "index": range(n), "instruction_difficulty": 0.0}).to_csv(path, index=False)
    return path


def fetch_df_gamed() -> Path:
    """The hub file alpaca_eval's length_controlled_v1 reads (instruction difficulty and gamed baselines)."""
    from alpaca_eval import constants
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id="tatsu-lab/alpaca_eval", filename="df_gamed.csv", repo_type="dataset",
                                    token=constants.DATASETS_TOKEN, cache_dir=constants.DEFAULT_CACHE_DIR))
    except Exception as err:  # noqa: BLE001 - any hub failure has the same remedy
        raise UserError(f"AlpacaEval LC ({LC_GLM}) needs df_gamed.csv from the hub dataset tatsu-lab/alpaca_eval "
                        f"and it could not be fetched ({type(err).__name__}); pass df_gamed=<a local copy> or "
                        f"glm='length_controlled_minimal' (not the official LC)") from None


def _df_gamed_file(glm: str, df_gamed: str | Path | None, tmp: Path, n: int) -> Path:
    """The df_gamed.csv the LC fit reads, found before any judge call so that a missing one costs nothing."""
    if df_gamed:
        if not Path(df_gamed).is_file():
            raise UserError(f"df_gamed={df_gamed} not found")
        return Path(df_gamed)
    return fetch_df_gamed() if glm == LC_GLM else _stub_df_gamed(tmp, n)


@contextlib.contextmanager
def _df_gamed_at(path: Path):
    """alpaca_eval's glm module reads df_gamed.csv through hf_hub_download: answer it with this file."""
    from alpaca_eval.metrics import glm_winrate

    original = glm_winrate.hf_hub_download
    glm_winrate.hf_hub_download = lambda **_kw: str(path)
    try:
        yield
    finally:
        glm_winrate.hf_hub_download = original


def forget_missing(config_dir: Path) -> int:
    """Drop the judgments alpaca_eval cached as missing (preference -1 or null); returns how many."""
    path = config_dir / "annotations_seed0_configs.json"
    if not path.is_file():
        return 0
    rows = json.loads(path.read_text(encoding="utf-8"))
    kept = [r for r in rows if r.get("preference") not in (None, -1, -1.0)]
    if len(kept) < len(rows):
        path.write_text(json.dumps(kept, indent=2, ensure_ascii=False), encoding="utf-8")
    return len(rows) - len(kept)


def _check_inputs(items: list[dict], responses: list[str], glm: str) -> None:
    if len(items) != len(responses):
        raise ValueError(f"{len(items)} items but {len(responses)} responses")
    if glm not in GLMS:
        raise UserError(f"AlpacaEval glm must be one of {', '.join(GLMS)}, got {glm!r}")
    if glm == LC_GLM and [it["id"] for it in items] != list(range(len(items))):
        # length_controlled_v1 looks instruction difficulty up by row position in the annotations
        raise UserError(f"AlpacaEval {LC_GLM} needs the reference file's rows in file order from its first row "
                        f"(its instruction difficulty is indexed by position); use all items, a prefix, or "
                        f"glm='length_controlled_minimal'")


def _clean(value):
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def evaluate(items: list[dict], responses: list[str], out_dir: str | Path, judge_base_url: str = OPENAI_BASE_URL,
             judge_model: str = JUDGE_MODEL, name: str = "model", annotator: str = ANNOTATOR, glm: str = LC_GLM,
             df_gamed: str | Path | None = None, concurrency: int = 8) -> dict:
    """Judge `responses` (one per item, as generated) against the items' baseline outputs with alpaca_eval.

    Writes into `out_dir`: model_outputs.json (FuseEval's format), the annotator config and its annotation cache,
    alpaca_eval's leaderboard.csv and annotations.json. Returns alpaca_eval's leaderboard row for `name`
    (length_controlled_winrate, lc_standard_error, win_rate, standard_error, discrete_win_rate, n_wins,
    n_wins_base, n_draws, n_total, avg_length) plus what ran (annotator, judge, glm_name) and n_missing (pairs
    without a usable judgment; a re-run asks those again).
    """
    import openai
    from alpaca_eval import main as alpaca_main

    from fusechat_utils.evaluation.judge import JudgeError

    _check_inputs(items, responses, glm)
    out = Path(out_dir).resolve()  # alpaca_eval reads a relative annotators_config from its own package folder
    out.mkdir(parents=True, exist_ok=True)
    model_outputs = [{"dataset": it["dataset"], "instruction": it["instruction"], "output": postprocess(r),
                      "generator": name} for it, r in zip(items, responses)]
    reference = [{"dataset": it["dataset"], "instruction": it["instruction"], "output": it["baseline"],
                  "generator": it["baseline_generator"]} for it in items]
    (out / "model_outputs.json").write_text(json.dumps(model_outputs, indent=2, ensure_ascii=False))
    config_dir = write_annotator_config(out / "alpaca_eval_annotators", judge_base_url, judge_model, annotator,
                                        concurrency)
    forget_missing(config_dir)
    with tempfile.TemporaryDirectory() as tmp:
        with _df_gamed_at(_df_gamed_file(glm, df_gamed, Path(tmp), len(items))):
            try:
                board, annotations = alpaca_main.evaluate(
                    model_outputs=model_outputs, reference_outputs=reference, annotators_config=config_dir,
                    name=name, output_path=out, precomputed_leaderboard=None, is_return_instead_of_print=True,
                    fn_metric="get_length_controlled_winrate", sort_by="length_controlled_winrate",
                    metric_kwargs={"glm_name": glm, "save_weights_dir": out / "glm_weights"})
            except openai.APIError as err:
                raise JudgeError(f"AlpacaEval judge {judge_model!r} at {judge_base_url}: {type(err).__name__}: "
                                 f"{err} (judgments so far are cached in {config_dir}; a re-run asks only the rest)"
                                 ) from err
    row = {k: _clean(v) for k, v in board.loc[name].to_dict().items()}
    missing = sum(1 for a in annotations if _clean(a.get("preference")) is None)
    return {**row, "n_missing": missing, "annotator": config_dir.name, "judge_model": judge_model,
            "judge_base_url": judge_base_url, "glm_name": glm,
            "official": (annotator, judge_model, glm) == (ANNOTATOR, JUDGE_MODEL, LC_GLM)}


def result_rows(model: str, stage: str, result: dict) -> list[dict]:
    """results.csv rows: the LC win rate and the raw win rate (percent, with alpaca_eval's standard errors)."""
    from fusechat_utils.evaluation.step import result_row

    name, n = "AlpacaEval-2 (LC %)", int(result["n_total"])
    return [result_row(model, stage, name, "lc_win_rate", result["length_controlled_winrate"], n,
                       result.get("lc_standard_error")),
            result_row(model, stage, name, "win_rate", result["win_rate"], n, result.get("standard_error"))]


def evaluate_stage(items: list[dict], generate, family: str, tokenizer, client, model: str, stage: str,
                   step_dir: str | Path | None = None, options: dict | None = None):
    """The registry's judged-benchmark call: generate with FuseEval's sampling, judge through alpaca_eval at the
    client's endpoint and model (its cache under <step_dir>/alpaca_eval/<stage>/), -> (rows, {name: samples}).
    `options`: `glm` (LC method; default the official length_controlled_v1, which needs the hub's df_gamed.csv
    or `df_gamed`), `df_gamed`, `annotator`."""
    options = options or {}
    responses = generate([build_prompt(it, family, tokenizer) for it in items], decoding(family))
    out = Path(step_dir or ".") / "alpaca_eval" / stage
    result = evaluate(items, responses, out, judge_base_url=str(client.client.base_url), judge_model=client.model,
                      name=stage, annotator=options.get("annotator", ANNOTATOR), glm=options.get("glm", LC_GLM),
                      df_gamed=options.get("df_gamed"), concurrency=client.concurrency)
    samples = [{"id": it["id"], "instruction": it["instruction"], "response": r} for it, r in zip(items, responses)]
    return result_rows(model, stage, result), {"AlpacaEval-2 (LC %)": samples}

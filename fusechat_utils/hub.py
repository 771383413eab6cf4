"""`fusechat push`: share a run the usual way. Its SFT/DPO sets become one hub dataset in the released FuseChat-3.0
schema, its trained models (05_sft, 06_dpo) hub model repos, each with a card written from the run's own files.

Usage:
    fusechat push --run-dir outputs/toy --dataset-repo ORG/NAME [--model-repo ORG/NAME] [--stages sft,dpo] [--private]
    push("outputs/toy", "me/fusechat-toy-data", model_repo="me/fusechat-toy")   # -> {repo: commit url}

The dataset repo holds two configs, `sft` (the default) and `dpo`, each with one `train` split: the two sets have
different columns (a config's splits share one schema), and the released sets are two datasets with one `train`
split each, so `load_dataset(ORG/NAME, "dpo", split="train")` gives what `load_dataset("FuseAI/FuseChat-3.0-DPO-Data",
split="train")` gives, and `sft_data: ORG/NAME` trains 05 on it. Files are in the layout `Dataset.push_to_hub` writes
(`<config>/train-0000k-of-0000n.parquet`, `configs` and `dataset_info` in the card's YAML, written by datasets' own
MetadataConfigs / DatasetInfosDict), but data, card and the steps' manifests go up in one `upload_folder` call, so
the card never describes other files than those beside it. Models go to ORG/NAME-sft and ORG/NAME-dpo (the
released models are separate repos too), loadable with `from_pretrained(ORG/NAME-dpo)`; each card carries the
recipe with the run's hyperparameters, the run's benchmark table and links to the step manifests uploaded beside.
A push replaces the repo's files (`delete_patterns="*"`; `.gitattributes` stays). The endpoint is huggingface_hub's
(`HF_ENDPOINT`, default https://huggingface.co); the token is its too (`hf auth login` or `HF_TOKEN`).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusechat_utils.errors import UserError

STAGES = {"sft": "05_sft", "dpo": "06_dpo"}  # stage -> the step that trains its model
DATA_STEPS = ("01_prompts", "02_sampling", "03_scoring", "04_pairs")
MANIFESTS = "fusechat/manifests"  # where a repo keeps the run's step manifests
SHARD_BYTES = 500 << 20  # Dataset.push_to_hub's default max_shard_size
RELEASED = {"sft": "FuseAI/FuseChat-3.0-SFT-Data", "dpo": "FuseAI/FuseChat-3.0-DPO-Data"}
LICENCE = ("These are derived data: the prompts come from the source datasets above and the responses from the "
           "source models, and each keeps its own licence and terms of use, which apply to this data and to models "
           "trained on it. fusechat-kit's own licence (MIT) covers the kit's code only.")


class PushError(UserError):
    """What `fusechat push` cannot do: a missing run file, an unknown stage, the hub refusing or unreachable."""


def features(stage: str):
    """The released sets' columns as datasets Features (explicit, so an empty or all-null column keeps its type)."""
    from datasets import Features, List, Value

    def messages(*keys: str):
        return List({k: Value("string") for k in keys})

    if stage == "sft":
        return Features({"dataset": Value("string"), "source_model": Value("string"),
                         "conversations": messages("from", "value")})
    turns = messages("content", "role")
    return Features({"dataset": Value("string"), "source_model": Value("string"), "prompt": turns, "chosen": turns,
                     "rejected": turns})


# --------------------------------------------------------------------------------------------------------------
# the run


@dataclass
class Run:
    """What the cards say about a run, read from its folder: step manifests, 04's composition, 07's results."""

    path: Path
    manifests: dict[str, dict] = field(default_factory=dict)
    composition: pd.DataFrame | None = None
    results: pd.DataFrame | None = None

    @classmethod
    def read(cls, run_dir: str | Path) -> Run:
        path = Path(run_dir)
        run = cls(path, {p.parent.name: json.loads(p.read_text()) for p in sorted(path.glob("0*/manifest.json"))})
        if (path / "04_pairs" / "composition.csv").is_file():
            run.composition = pd.read_csv(path / "04_pairs" / "composition.csv")
        if (path / "07_eval" / "results.csv").is_file():
            run.results = pd.read_csv(path / "07_eval" / "results.csv")
        return run

    @property
    def name(self) -> str:
        return next((m["run_name"] for m in self.manifests.values() if m.get("run_name")), self.path.name)

    def params(self, step: str) -> dict[str, Any]:
        return {k: v for k, v in self.manifests.get(step, {}).get("params", {}).items() if k != "run_dir"}

    def commits(self, steps) -> str:
        """The kit commit the steps ran at: one, or each step's when they differ."""
        found = {s: self.manifests[s].get("git_commit") or "unknown" for s in steps if s in self.manifests}
        if len(set(found.values())) == 1:
            return f"`{next(iter(found.values()))}`"
        return ", ".join(f"{s}: `{c}`" for s, c in found.items()) or "unknown (no step manifests)"


def check(run: Run, stages: list[str], with_models: bool) -> None:
    """PushError naming every file the push needs that the run lacks (checked before anything is sent)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise PushError(f"--stages {','.join(stages)!r}: stages are {', '.join(STAGES)} (comma-separated)")
    need = [run.path / "04_pairs" / name for name in ("manifest.json", "composition.csv")]
    need += [run.path / "04_pairs" / f"{s}.parquet" for s in stages]
    if with_models:
        need += [run.path / STAGES[s] / f for s in stages for f in ("manifest.json", "model/config.json")]
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        raise PushError(f"run {run.path} lacks {', '.join(missing)}: run the steps that write them (04_pairs for the "
                        f"sets, 05_sft / 06_dpo for the models) or push fewer --stages")


# --------------------------------------------------------------------------------------------------------------
# markdown


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(df: pd.DataFrame) -> str:
    rows = [list(map(str, df.columns)), ["---"] * len(df.columns)]
    rows += [[_cell(v) for v in row] for row in df.astype(object).itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def _yaml(params: dict) -> str:
    import yaml

    return "```yaml\n" + yaml.safe_dump(params, sort_keys=False, allow_unicode=True, width=115).rstrip() + "\n```"


def _blob(endpoint: str, repo_id: str, kind: str, path: str) -> str:
    prefix = "datasets/" if kind == "dataset" else ""
    return f"{endpoint}/{prefix}{repo_id}/blob/main/{path}"


def _manifest_links(run: Run, steps, endpoint: str, repo_id: str, kind: str) -> str:
    return ", ".join(f"[{s}]({_blob(endpoint, repo_id, kind, f'{MANIFESTS}/{s}.json')})"
                     for s in steps if s in run.manifests)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _sources(run: Run, stages: list[str]) -> pd.DataFrame:
    """The source models 02 sampled (name, model, decoding, the categories each answered) and the rows each
    gave the sets; a source_model 02 did not sample (OpenMathInstruct-2's reference solutions) gets a row too."""
    from fusechat_utils.io import read_parquet

    params = run.params("02_sampling")
    rows = {}
    for src in params.get("sample_sources", []):
        cats = [c for c in ("general", "math", "code", "chinese")
                if src["name"] in params.get(f"sample_{c}_sources", [])]
        rows[src["name"]] = {"source": src["name"], "model": src["model"], "categories": ", ".join(cats),
                             **{k: src.get(k) for k in ("temperature", "top_p", "repetition_penalty")}}
    for stage in stages:
        counts = read_parquet(run.path / "04_pairs" / f"{stage}.parquet", columns=["source_model"])["source_model"]
        for name, n in counts.value_counts(sort=False).items():
            row = rows.setdefault(name, {"source": name, "model": "(from the prompt dataset, not sampled)"})
            row[f"{stage.upper()} rows"] = n
    columns = ["source", "model", "categories", "temperature", "top_p", "repetition_penalty",
               *(f"{s.upper()} rows" for s in stages)]
    return pd.DataFrame(list(rows.values()), columns=columns).fillna({f"{s.upper()} rows": 0 for s in stages})


# --------------------------------------------------------------------------------------------------------------
# the dataset


def write_dataset(run: Run, stages: list[str], out: Path, scratch: Path) -> dict[str, Any]:
    """`export` the run's sets (the released columns) into `scratch`, write them as parquet shards in the hub's
    layout under `out`, and return what datasets' YAML needs: {stage: DatasetInfo}."""
    from datasets import Dataset, DatasetInfo, SplitDict, SplitInfo

    from fusechat_utils.train_data import export

    exported = export(run.path, scratch)
    infos = {}
    for stage in stages:
        rows = [json.loads(line) for line in exported[stage].read_text(encoding="utf-8").splitlines()]
        data = Dataset.from_list(rows, features=features(stage))
        shards = max(1, math.ceil(data.data.nbytes / SHARD_BYTES))
        size = 0
        for k in range(shards):
            path = out / stage / f"train-{k:05d}-of-{shards:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            data.shard(shards, k, contiguous=True).to_parquet(str(path))
            size += path.stat().st_size
        splits = SplitDict()
        splits.add(SplitInfo(name="train", num_bytes=data.data.nbytes, num_examples=len(data)))
        infos[stage] = DatasetInfo(features=data.features, splits=splits, download_size=size,
                                   dataset_size=data.data.nbytes)
    return infos


def dataset_card(run: Run, stages: list[str], infos: dict, repo_id: str, endpoint: str):
    """The dataset's README: YAML (configs, dataset_info, licence, languages, sources) and the run's tables."""
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    from fusechat_utils.prompt_sources import DATASETS

    names = [d for d in run.composition["dataset"] if d != "Total"]
    prompts = run.params("01_prompts")
    from_hub = prompts.get("prompts_source") == "hub"  # else local files named after the datasets (the toy's)
    specs = [DATASETS[d] for d in names if d in DATASETS]
    data = DatasetCardData(
        pretty_name=f"FuseChat-3.0 data, fusechat-kit run {run.name}", license="other",
        license_name="source-datasets-and-models", language=sorted({s.language for s in specs}) or None,
        task_categories=["text-generation"], tags=["fusechat", "model-fusion", *stages],
        size_categories=[_size_category(max(i.splits["train"].num_examples for i in infos.values()))],
        source_datasets=[s.hf_id for s in specs] if from_hub and specs else None)
    configs = {s: {"data_files": [{"split": "train", "path": f"{s}/train-*"}]} for s in stages}
    default = "sft" if "sft" in stages else stages[0]
    configs[default]["default"] = True  # what load_dataset(repo_id) and `sft_data: repo_id` read
    MetadataConfigs(configs).to_dataset_card_data(data)
    DatasetInfosDict(infos).to_dataset_card_data(data)
    counts = ", ".join(f"{s.upper()} {i.splits['train'].num_examples:,} rows" for s, i in infos.items())
    loads = "\n".join(f'{s} = load_dataset("{repo_id}", "{s}", split="train")' for s in stages)
    params = "\n".join(f"### {s}\n\n{_yaml(run.params(s))}\n" for s in DATA_STEPS if s in run.manifests)
    licences = (", ".join(f"[{s.hf_id}](https://huggingface.co/datasets/{s.hf_id})" for s in specs) if from_hub
                else f"the local files in `{prompts.get('prompts_fixtures_dir')}` (01's `prompts_source: fixtures`)")
    same_source = " (both answers from `source_model`)" if run.params("04_pairs").get(
        "pairs_pairing") == "same_source" else ""
    kit_use = (f"With fusechat-kit: `fusechat run --profile P --steps 05-07 --set sft_data={repo_id}` (`sft` is the "
               f"default config).\n" if default == "sft" else "")
    pairs = run.manifests["04_pairs"]
    body = f"""
# FuseChat-3.0 SFT / DPO data: fusechat-kit run `{run.name}`

The sets built by steps 01–04 of fusechat-kit, a reproduction of FuseChat-3.0
([arXiv 2503.04222](https://arxiv.org/abs/2503.04222); the recipe:
responses of several source models to the same prompts, scored by a reward model and verified for math and code;
the best response of a prompt for SFT, the best and worst response of one source for DPO), in the schema of the
released sets ({', '.join(f'[{RELEASED[s]}](https://huggingface.co/datasets/{RELEASED[s]})' for s in stages)}).
{counts}.

```python
from datasets import load_dataset
{loads}
```

{kit_use}

## Schema

- `sft`: `dataset`, `source_model`, `conversations` = `[{{from: human, value}}, {{from: gpt, value}}]` (ShareGPT)
- `dpo`: `dataset`, `source_model`, `prompt` = `[{{role: user, content}}]`, `chosen` / `rejected` =
  `[{{role: assistant, content}}]`{same_source}

## Composition

Prompts, SFT rows and DPO pairs per source dataset (04_pairs/composition.csv of the run; `paper_*`: the paper's
Table 1, for reference; `Pool`: prompts 01 selected).

{md_table(run.composition)}

## Source models

{md_table(_sources(run, stages))}

Reward model (03_scoring): `{run.params("03_scoring").get("score_reward_model", "unknown")}`.

## Parameters of steps 01–04

{params}
## Provenance

fusechat-kit commit {run.commits(DATA_STEPS)}. 04_pairs outputs hash `{pairs.get("outputs_hash")}`. The steps'
manifests (resolved params, input and output hashes, package versions, seeds): {_manifest_links(
        run, DATA_STEPS, endpoint, repo_id, "dataset")}.

## Licence

{LICENCE} Prompts: {licences or "see the composition table"}; source models: see the table above.
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}")


# --------------------------------------------------------------------------------------------------------------
# the models


def model_repos(model_repo: str, stages: list[str]) -> dict[str, str]:
    return {s: f"{model_repo}-{s}" for s in stages}


def _trained_on(run: Run, stage: str, dataset_repo: str, endpoint: str, pushed: bool = True
                ) -> tuple[str, str | None]:
    """(what the card says the stage trained on, the hub dataset id for the card's YAML or None); `pushed`: this
    push sends the stage's set."""
    metrics_file = run.path / STAGES[stage] / "metrics.json"
    source = json.loads(metrics_file.read_text()).get("data", {}).get("source", "") if metrics_file.is_file() else ""
    if source.startswith("hub:"):
        return f"the hub dataset `{source[4:]}`", source[4:]
    if source and not source.startswith("04_pairs/"):
        return f"the file `{source}`", None
    if not pushed:
        return f"this run's {stage.upper()} set (04_pairs/{stage}.parquet, not pushed)", None
    link = f"[{dataset_repo}]({endpoint}/datasets/{dataset_repo})"
    return f"this run's {stage.upper()} set, config `{stage}` of {link}", dataset_repo


def _benchmarks(run: Run) -> str:
    """07's results.csv as benchmark x stage, `value ± stderr` (the table notebooks/analysis shows per run)."""
    if run.results is None or run.results.empty:
        return "No benchmark results in this run (07_eval did not run)."
    res = run.results.assign(cell=[_cell(round(v, 2)) + ("" if pd.isna(e) else f" ± {e:.2f}")
                                   for v, e in zip(run.results["value"], run.results["stderr"])])
    table = res.pivot_table(index=["benchmark", "metric", "n"], columns="stage", values="cell", aggfunc="first")
    order = [s for s in ("base", "sft", "dpo") if s in table.columns]
    table = table[order + [s for s in table.columns if s not in order]]
    return "07_eval/results.csv of the run (`base`: the target before training):\n\n" + md_table(table.reset_index())


def _training(run: Run, step: str) -> str:
    """One line from the step's metrics.json: steps, rows, loss, the DPO checkpoint kept, wall time."""
    path = run.path / step / "metrics.json"
    if not path.is_file():
        return ""
    m = json.loads(path.read_text())
    rows = (f"{m['examples']:,} examples" if "examples" in m
            else f"{m.get('pairs_train', 0):,} pairs ({m.get('pairs_eval', 0):,} held out)")
    kept = m.get("checkpoint_choice", {})
    kept = f", kept {kept['chosen']} ({kept['why']})" if kept.get("chosen") else ""
    return (f"Trained {m.get('steps')} steps on {rows}, train loss {m.get('train_loss_first', float('nan')):.4g} → "
            f"{m.get('train_loss_last', float('nan')):.4g}{kept}, {m.get('wall_time_s', 0):.0f} s on "
            f"{m.get('num_processes', 1)} process{'es' if m.get('num_processes', 1) > 1 else ''}.\n")


def _hyperparameters(run: Run, step: str) -> str:
    """The step's own params (its data aside, named above the table; LoRA's only when it trained with peft)."""
    prefix = step.split("_")[1] + "_"
    params = run.params(step)
    lora = params.get(f"{prefix}peft", "none") != "none"
    keep = {k: v for k, v in params.items() if k.startswith(prefix) and not k.endswith("_data")
            and (lora or not k.startswith(f"{prefix}lora_"))}
    return md_table(pd.DataFrame({"param": list(keep), "value": [json.dumps(v) if isinstance(v, (dict, list))
                                                                else v for v in keep.values()]}))


def model_steps(stage: str) -> list[str]:
    """The steps a stage's model depends on (and its repo keeps the manifests of): 06 only for the DPO model."""
    return [*DATA_STEPS, "05_sft", *(["06_dpo"] if stage == "dpo" else []), "07_eval"]


def _peft_note(run: Run, steps: list[str]) -> str:
    """What the weights are when a stage trained a LoRA adapter: the adapter merged into its base, not uploaded."""
    notes = []
    for step, prefix in (("05_sft", "sft_"), ("06_dpo", "dpo_")):
        params = run.params(step) if step in steps else {}
        if params.get(f"{prefix}peft", "none") != "none":
            notes.append(f"{step} trained a {params[f'{prefix}peft'].upper()} adapter (r {params.get(f'{prefix}lora_r')}, "
                         f"alpha {params.get(f'{prefix}lora_alpha')}, {params.get(f'{prefix}lora_target_modules')}), "
                         "merged into its base")
    return f" The weights are full models: {'; '.join(notes)}; the adapters are not uploaded." if notes else ""


def model_card(run: Run, stage: str, repos: dict[str, str], dataset_repo: str, endpoint: str):
    """A model's README: YAML (base model, data, licence, tags) and the recipe, benchmarks and provenance."""
    from huggingface_hub import ModelCard, ModelCardData

    from fusechat_utils.train_data import is_local

    target = run.params("05_sft").get("target_model", "unknown")
    base = (repos.get("sft") if stage == "dpo" else None if is_local(target) else target) or None
    data_text, data_id = _trained_on(run, stage, dataset_repo, endpoint)
    meta = ModelCardData(library_name="transformers", license="other", license_name="target-and-source-models",
                         base_model=base, base_model_relation="finetune" if base else None,
                         datasets=[data_id] if data_id else None, pipeline_tag="text-generation",
                         tags=["fusechat", "model-fusion", "trl", stage])
    if stage == "dpo":
        what = "the model after SFT then DPO"
        dpo = (f"### DPO (06_dpo)\n\nFrom the SFT model, on {data_text}; the step's params:\n\n"
               f"{_hyperparameters(run, '06_dpo')}\n\n{_training(run, '06_dpo')}")
    else:
        other = f"[{repos['dpo']}]({endpoint}/{repos['dpo']})" if "dpo" in repos else "not pushed"
        what, dpo = f"the model after SFT (the SFT + DPO model: {other})", ""
    body = f"""
# {repos[stage]}

Fusion of source models into the target `{target}` by FuseChat-3.0's recipe
([arXiv 2503.04222](https://arxiv.org/abs/2503.04222)), made with fusechat-kit (run `{run.name}`): {what}.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{repos[stage]}")
tokenizer = AutoTokenizer.from_pretrained("{repos[stage]}")
```

## Recipe

Base: the target `{target}`, trained with TRL: SFT on the best responses of the source models, then DPO on pairs
of one source's best and worst response.{_peft_note(run, model_steps(stage))} The data's card ([{dataset_repo}]({endpoint}/datasets/{dataset_repo})) has
the composition, the source models and the params of steps 01–04.

### SFT (05_sft)

On {_trained_on(run, "sft", dataset_repo, endpoint, "sft" in repos)[0]}; the step's params:

{_hyperparameters(run, "05_sft")}

{_training(run, "05_sft")}
{dpo}
## Evaluation

{_benchmarks(run)}

## Provenance

fusechat-kit commit {run.commits(model_steps(stage))}. Step manifests (resolved params, input and output hashes,
package versions, seeds, wall time): {_manifest_links(run, model_steps(stage), endpoint, repos[stage], "model")}.

## Licence

The weights derive from the target `{target}` and were trained on responses of the source models (see the data's
card); the licences and terms of use of the target, the source models and the source datasets apply.
fusechat-kit's own licence (MIT) covers the kit's code only.
"""
    return ModelCard(f"---\n{meta.to_yaml()}\n---\n{body}")


def _link_model(src: Path, out: Path) -> None:
    """The model's files under `out` as symlinks (weights are not copied to be uploaded), less the trainer's
    pickled arguments: from_pretrained does not read them, the hub flags pickles, the card has the params."""
    for file in sorted(p for p in src.rglob("*") if p.is_file() and p.name != "training_args.bin"):
        target = out / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(file.resolve())


def _add_manifests(run: Run, steps, out: Path) -> None:
    folder = out / MANIFESTS
    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        if step in run.manifests:
            (folder / f"{step}.json").write_text(json.dumps(run.manifests[step], indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------------------------
# push


def push(run_dir: str | Path, dataset_repo: str, model_repo: str | None = None, stages=("sft", "dpo"),
         private: bool = False, log=print) -> dict[str, str]:
    """Upload the run's sets (and models with `model_repo`) with their cards; {repo id: commit url}."""
    from huggingface_hub import HfApi, constants

    stages = list(stages)
    run = Run.read(run_dir)
    check(run, stages, model_repo is not None)
    if constants.is_offline_mode():
        raise PushError("HF_HUB_OFFLINE is set: pushing needs the hub; unset it (and HF_DATASETS_OFFLINE)")
    api = HfApi()
    pushed = {}
    with tempfile.TemporaryDirectory(prefix="fusechat-push-") as tmp:
        folder = Path(tmp) / "dataset"
        infos = write_dataset(run, stages, folder, Path(tmp) / "export")
        dataset_card(run, stages, infos, dataset_repo, api.endpoint).save(folder / "README.md")
        _add_manifests(run, DATA_STEPS, folder)
        pushed[dataset_repo] = _upload(api, folder, dataset_repo, "dataset", private,
                                       f"fusechat push: run {run.name}, {', '.join(stages)} sets")
        log(f"dataset {dataset_repo}: {pushed[dataset_repo]}")
        repos = model_repos(model_repo, stages) if model_repo else {}
        for stage, repo_id in repos.items():
            folder = Path(tmp) / stage
            _link_model(run.path / STAGES[stage] / "model", folder)
            model_card(run, stage, repos, dataset_repo, api.endpoint).save(folder / "README.md")
            _add_manifests(run, model_steps(stage), folder)
            pushed[repo_id] = _upload(api, folder, repo_id, "model", private,
                                      f"fusechat push: run {run.name}, {stage} model")
            log(f"model {repo_id}: {pushed[repo_id]}")
    return pushed


def _upload(api, folder: Path, repo_id: str, kind: str, private: bool, message: str) -> str:
    """create_repo + upload_folder (replacing the repo's files); the hub's refusals as PushError."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_repo(repo_id, repo_type=kind, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=kind, commit_message=message,
                                 delete_patterns="*")
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        hint = (" (not logged in, or the token cannot write there: `hf auth login` or HF_TOKEN)"
                if status in (401, 403) else "")
        raise PushError(f"{api.endpoint} refused the push to {kind} {repo_id}{hint}: {str(err).splitlines()[0]}"
                        ) from None
    except httpx2.TransportError as err:
        raise PushError(f"cannot reach the hub at {api.endpoint} (HF_ENDPOINT) to push {kind} {repo_id}: {err}"
                        ) from None
    return info.commit_url

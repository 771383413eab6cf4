"""`fusechat push` against a local stand-in of the hub (tests/hub_stand_in.py): the toy run's sets and models go up
with their cards, come back with `datasets.load_dataset` and `from_pretrained` through HF_ENDPOINT, and 05 trains
from the pushed dataset id; the cards carry the run's own numbers; what cannot be pushed is named before sending."""

import itertools
import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
from hub_stand_in import HubStandIn
from test_train_sft import build_pairs

from fusechat_utils import hub
from fusechat_utils.cli import main
from fusechat_utils.config import PROJECT_ROOT

DATA, MODELS = "fusechat/toy-data", "fusechat/toy"


def hub_env(hub, tmp_path):
    """What a user's shell would hold to talk to this hub: its URL, a token, a fresh cache, online."""
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": "stand-in-token", "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}


def python(code_or_args, env):
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    proc = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def card_table(text: str, heading: str) -> pd.DataFrame:
    """The first markdown table after `heading` in a card, as strings ('–' = empty)."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = itertools.takewhile(lambda line: line.startswith("|"), lines[start:])
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in block]
    return pd.DataFrame(rows[2:], columns=rows[0]).replace("–", None)


def readme(hub, kind, repo_id):
    from huggingface_hub import DatasetCard, ModelCard

    text = hub.files(kind, repo_id, hub.head(kind, repo_id, "main"))["README.md"].read_text()
    return (DatasetCard if kind == "dataset" else ModelCard)(text)


@pytest.mark.slow
def test_push_the_toy_run_load_it_back_and_train_05_from_the_pushed_dataset(toy_run, tmp_path):
    run_dir, _ = toy_run
    manifests = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("0*/manifest.json")}
    with HubStandIn(tmp_path / "hub") as hub:
        env = hub_env(hub, tmp_path)
        out = python(["-m", "fusechat_utils", "push", "--run-dir", str(run_dir), "--dataset-repo", DATA,
                      "--model-repo", MODELS], env)
        assert f"dataset {DATA}: {hub.url}/datasets/{DATA}/commit/" in out and f"model {MODELS}-dpo: " in out

        # the dataset card: YAML as datasets writes it, the run's composition table, the kit commit
        card = readme(hub, "dataset", DATA)
        sft, dpo = (pd.read_parquet(run_dir / "04_pairs" / f"{s}.parquet") for s in ("sft", "dpo"))
        configs = {c["config_name"]: c for c in card.data.configs}
        assert configs["sft"]["default"] and configs["dpo"]["data_files"] == [{"split": "train",
                                                                                "path": "dpo/train-*"}]
        assert {i["config_name"]: i["splits"][0]["num_examples"] for i in card.data.dataset_info} == {
            "sft": len(sft), "dpo": len(dpo)}
        composition = pd.read_csv(run_dir / "04_pairs" / "composition.csv")
        shown = card_table(card.text, "## Composition")
        assert list(shown.columns) == list(composition.columns) and list(shown.dataset) == list(composition.dataset)
        for col in ["Selected", "SFT", "DPO", "Pool", "paper_Selected", "paper_SFT", "paper_DPO"]:
            assert pd.to_numeric(shown[col]).astype(float).equals(composition[col].astype(float)), col
        commits = {step: f"`{m['git_commit']}`" for step, m in manifests.items()}  # one, or each step's if they differ
        assert all(commits[s] in card.text for s in ("01_prompts", "02_sampling", "03_scoring", "04_pairs"))
        assert "src-llama" in card_table(card.text, "## Source models").source.tolist()
        assert "keeps its own licence" in card.text and card.data.license == "other"

        # the model cards: recipe with the run's hyperparameters, its benchmark table, linked manifests
        sft_card, dpo_card = readme(hub, "model", f"{MODELS}-sft"), readme(hub, "model", f"{MODELS}-dpo")
        assert dpo_card.data.base_model == f"{MODELS}-sft" and dpo_card.data.datasets == [DATA]
        params = card_table(dpo_card.text, "### DPO (06_dpo)").set_index("param")["value"]
        assert float(params["dpo_beta"]) == manifests["06_dpo"]["params"]["dpo_beta"]
        assert params["dpo_loss_type"] == manifests["06_dpo"]["params"]["dpo_loss_type"]
        lr = card_table(sft_card.text, "### SFT (05_sft)").set_index("param")["value"]["sft_learning_rate"]
        assert float(lr) == manifests["05_sft"]["params"]["sft_learning_rate"] and "### DPO" not in sft_card.text
        results = pd.read_csv(run_dir / "07_eval" / "results.csv")
        table = card_table(dpo_card.text, "## Evaluation").set_index(["benchmark", "metric"])
        for row in results.itertuples():
            value, stderr = table.loc[(row.benchmark, row.metric), row.stage].split(" ± ")
            assert abs(float(value) - row.value) < 0.006 and abs(float(stderr) - row.stderr) < 0.006, row
        assert f"on {len(sft):,} examples" in sft_card.text and "kept checkpoint-" in dpo_card.text
        assert all(commit in dpo_card.text for commit in commits.values())
        files = hub.files("model", f"{MODELS}-dpo", hub.head("model", f"{MODELS}-dpo", "main"))
        for step in ("04_pairs", "06_dpo", "07_eval"):
            link = f"{hub.url}/{MODELS}-dpo/blob/main/fusechat/manifests/{step}.json"
            assert link in dpo_card.text
            assert json.loads(files[f"fusechat/manifests/{step}.json"].read_text()) == manifests[step]
        assert "fusechat/manifests/06_dpo.json" not in hub.files("model", f"{MODELS}-sft", hub.head(
            "model", f"{MODELS}-sft", "main"))

        # load back as users do, through HF_ENDPOINT: the released columns, the run's rows; the trained weights
        loaded = json.loads(python(f"""
import json, torch, datasets
from transformers import AutoModelForCausalLM
from fusechat_utils.train_data import export
rows = {{n: [json.loads(x) for x in p.read_text().splitlines()] for n, p in export({str(run_dir)!r},
        {str(tmp_path / 'export')!r}).items() if n in ("sft", "dpo")}}
out = {{}}
for config in (None, "sft", "dpo"):
    data = datasets.load_dataset({DATA!r}, config, split="train")
    out[str(config)] = {{"columns": data.column_names, "same_rows": data.to_list() == rows[config or "sft"]}}
for stage, step in (("sft", "05_sft"), ("dpo", "06_dpo")):
    pushed = AutoModelForCausalLM.from_pretrained({MODELS!r} + "-" + stage).state_dict()
    local = AutoModelForCausalLM.from_pretrained({str(run_dir)!r} + "/" + step + "/model").state_dict()
    same = pushed.keys() == local.keys() and all(torch.equal(v, local[k]) for k, v in pushed.items())
    out["weights_" + stage] = same
print(json.dumps(out))
""", env).splitlines()[-1])
        assert loaded["None"] == loaded["sft"] == {"columns": ["dataset", "source_model", "conversations"],
                                                   "same_rows": True}
        assert loaded["dpo"] == {"columns": ["dataset", "source_model", "prompt", "chosen", "rejected"],
                                 "same_rows": True}
        assert loaded["weights_sft"] and loaded["weights_dpo"]

        # train 05 from the pushed dataset id, a few steps
        run2 = tmp_path / "from_hub"
        sets = [f"run_dir={run2}", f"sft_data={DATA}", "sft_max_steps=3", "sft_logging_steps=1"]
        python(["-m", "fusechat_utils", "run", "--profile", "toy", "--steps", "05", "--quiet",
                *(a for kv in sets for a in ("--set", kv))], env)
        metrics = json.loads((run2 / "05_sft" / "metrics.json").read_text())
        assert metrics["data"]["source"] == f"hub:{DATA}"
        assert json.loads((run2 / "05_sft" / "manifest.json").read_text())["inputs"]["param:sft_data"] == f"hub:{DATA}"
        assert (run2 / "05_sft" / "model" / "model.safetensors").is_file()
        assert hub.unknown == []


def tiny_run(run_dir):
    """04's sets and manifests (no models): enough for a data push."""
    build_pairs(run_dir, n_sft=5, n_dpo=4)
    pd.DataFrame([{"dataset": "toy", "category": "math", "Selected": 9, "SFT": 5, "DPO": 4}]).to_csv(
        run_dir / "04_pairs" / "composition.csv", index=False)
    (run_dir / "04_pairs" / "manifest.json").write_text(json.dumps({"git_commit": "abc", "params": {}}))


def test_push_names_what_the_run_lacks_and_the_hub_refusals(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    run = tmp_path / "run"
    build_pairs(run, n_sft=5, n_dpo=4)
    assert main(["push", "--run-dir", str(run), "--dataset-repo", DATA, "--model-repo", MODELS]) == 1
    err = capsys.readouterr().err
    for missing in ("04_pairs/composition.csv", "04_pairs/manifest.json", "05_sft/model/config.json",
                    "06_dpo/manifest.json"):
        assert missing in err, err
    assert main(["push", "--run-dir", str(run), "--dataset-repo", DATA, "--stages", "sft,rm"]) == 1
    assert "--stages 'sft,rm': stages are sft, dpo" in capsys.readouterr().err
    run = tmp_path / "tiny"
    tiny_run(run)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["push", "--run-dir", str(run), "--dataset-repo", DATA]) == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    with HubStandIn(tmp_path / "hub") as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        assert main(["push", "--run-dir", str(run), "--dataset-repo", DATA]) == 1
        assert f"{hub.url} refused the push to dataset {DATA} (not logged in" in capsys.readouterr().err
        monkeypatch.setenv("HF_TOKEN", "stand-in-token")
        assert main(["push", "--run-dir", str(run), "--dataset-repo", DATA, "--stages", "sft"]) == 0
        files = hub.files("dataset", DATA, hub.head("dataset", DATA, "main"))
        assert sorted(files) == ["README.md", "fusechat/manifests/04_pairs.json", "sft/train-00000-of-00001.parquet"]
        assert pd.read_parquet(files["sft/train-00000-of-00001.parquet"]).columns.tolist() == [
            "dataset", "source_model", "conversations"]
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    assert main(["push", "--run-dir", str(run), "--dataset-repo", DATA]) == 1
    assert f"cannot reach the hub at http://127.0.0.1:{port}" in capsys.readouterr().err


def test_a_model_card_says_when_the_weights_are_a_merged_lora_adapter(tmp_path):
    lora = {"sft_peft": "lora", "sft_lora_r": 8, "sft_lora_alpha": 16, "sft_lora_target_modules": "all-linear"}
    run = hub.Run(tmp_path, {"05_sft": {"params": lora}, "06_dpo": {"params": {"dpo_peft": "none"}}})
    note = hub._peft_note(run, hub.model_steps("dpo"))
    assert "05_sft trained a LORA adapter (r 8, alpha 16, all-linear), merged into its base" in note
    assert "06_dpo" not in note and "not uploaded" in note
    assert hub._peft_note(hub.Run(tmp_path, {"05_sft": {"params": {"sft_peft": "none"}}}), ["05_sft"]) == ""

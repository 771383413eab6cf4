"""`fusechat plan`: counts x samples x lengths -> tokens -> GPU-hours per stage, every assumption with its source."""

import re

import pytest

from fusechat_utils.cli import main
from fusechat_utils.config import PROJECT_ROOT, load_profile
from fusechat_utils.errors import UserError
from fusechat_utils.paper import paper_table
from fusechat_utils.planner import ASSUMPTIONS, MODEL_PARAMS_B, make_plan, params_b, parse_gpus, render

SMALL = """base: llama3.1-8b
prompts_datasets: [UltraFeedback, OpenMathInstruct-2, leetcode, alpaca_gpt4_zh]
prompts_max_per_dataset: {UltraFeedback: 100, OpenMathInstruct-2: 40, leetcode: 10, alpaca_gpt4_zh: 7}
pairs_max_per_dataset: {UltraFeedback: 80, OpenMathInstruct-2: 30, leetcode: 8, alpaca_gpt4_zh: 5}
pairs_dpo_share: {OpenMathInstruct-2: 0.2, leetcode: 0.5}
sample_n_general: 2
sample_n_code: 3
sample_n_math: 4
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small_profile")
    (folder / "plan.yaml").write_text(SMALL)
    return load_profile(folder)


def a(key):
    return ASSUMPTIONS[key].value


def test_counts_are_prompts_times_sources_times_samples(small):
    plan = make_plan(small, "8xH100", nodes=1)
    rows = {r["dataset"]: r for r in plan["counts"]}
    # general: 4 sources x 2; math: Qwen2.5-Math x 4 (+ the kept reference, scored only); code: 4 x 3; Chinese: 1 x 1
    assert {k: (r["generated"], r["scored"]) for k, r in rows.items()} == {
        "UltraFeedback": (800, 800), "OpenMathInstruct-2": (160, 200), "leetcode": (120, 120),
        "alpaca_gpt4_zh": (7, 7)}
    # 04's split of Selected: general SFT = floor(0.4 x 80); math DPO = round(0.2 x 30); code 0.5; Chinese all SFT
    assert {k: (r["sft"], r["dpo"]) for k, r in rows.items()} == {
        "UltraFeedback": (32, 48), "OpenMathInstruct-2": (24, 6), "leetcode": (4, 4), "alpaca_gpt4_zh": (5, 0)}
    by_source = {s["source"]: s["responses"] for s in plan["sources"]}
    assert by_source == {"gemma-2-27b-it": 230, "Mistral-Large-Instruct-2407": 230, "Qwen2.5-72B-Instruct": 237,
                         "Llama-3.1-70B-Instruct": 230, "Qwen2.5-Math-72B-Instruct": 160}
    assert plan["cpu"]["programs"] == 120


def test_tokens_become_gpu_hours_and_wall_time(small):
    plan = make_plan(small, "8xH100", nodes=1)
    stages = {s["stage"]: s for s in plan["stages"]}
    seq = a("prompt_tokens") + a("response_tokens")
    mistral = stages["02 sampling: Mistral-Large-Instruct-2407"]
    rate = a("gen_tokens_per_s_gpu_70b") * a("gen_reference_params_b") / 123.0
    assert mistral["work"] == 230 * a("response_tokens")
    assert mistral["gpu_hours"] == pytest.approx(230 * a("response_tokens") / rate / 3600)
    scoring = stages["03 scoring: ArmoRM-Llama3-8B-v0.1"]
    assert scoring["gpu_hours"] == pytest.approx(1127 * seq / a("score_tokens_per_s_gpu") / 3600)
    sft_rate = a("train_tokens_per_s_gpu_8b") * a("train_reference_params_b") / 8.03
    assert stages["05 SFT"]["work"] == 65 * seq * 3  # 3 epochs
    assert stages["05 SFT"]["gpu_hours"] == pytest.approx(65 * seq * 3 / sft_rate / 3600)
    assert stages["06 DPO"]["work"] == 58 * 2 * seq  # chosen and rejected, 1 epoch
    assert stages["06 DPO"]["gpu_hours"] == pytest.approx(58 * 2 * seq * a("dpo_cost_factor") / sft_rate / 3600)
    for stage in plan["stages"]:
        assert stage["wall_hours"] == pytest.approx(stage["gpu_hours"] / 8)
    assert plan["totals"]["gpu_hours"] == pytest.approx(sum(s["gpu_hours"] for s in plan["stages"]))
    four = {s["stage"]: s for s in make_plan(small, "8xH100", nodes=4)["stages"]}
    assert four["05 SFT"]["gpu_hours"] == pytest.approx(stages["05 SFT"]["gpu_hours"] / a("multi_node_efficiency"))
    assert four["05 SFT"]["wall_hours"] == pytest.approx(four["05 SFT"]["gpu_hours"] / 32)
    assert four["03 scoring: ArmoRM-Llama3-8B-v0.1"]["gpu_hours"] == pytest.approx(scoring["gpu_hours"])


def test_the_paper_profile_plans_the_papers_counts():
    plan = make_plan(load_profile("llama3.1-8b"), "8xH100")
    paper = paper_table("dataset_composition").set_index("dataset")
    for row in plan["counts"]:
        ref = paper.loc[row["dataset"]]
        assert (row["selected"], row["sft"], row["dpo"]) == (ref["selected"], ref["sft"], ref["dpo"])
    assert plan["totals"]["sft"] + plan["totals"]["dpo"] == 158_667


def test_every_assumption_has_a_source_and_a_derivation():
    for key, item in {**ASSUMPTIONS, **MODEL_PARAMS_B}.items():
        assert item.value > 0, key
        assert re.search(r"https://\S+|this kit", item.source), f"{key}: no URL or kit file in {item.source!r}"
        assert len(item.derivation) > 20, key
    text = render(make_plan(load_profile("llama3.1-8b"), "8xH100"))
    assert all(key in text for key in ASSUMPTIONS)  # the printed plan carries the whole table


def test_every_paper_model_has_a_size_from_its_card():
    for profile in ("llama3.1-8b", "qwen2.5-7b", "gemma2-9b", "llama3.2-3b", "llama3.2-1b"):
        params = load_profile(profile)
        for model in [s["model"] for s in params["sample_sources"]] + [params["target_model"]]:
            assert model in MODEL_PARAMS_B, f"{profile}: {model}"
    assert params_b("org/Some-Model-14B-Chat") == 14
    with pytest.raises(UserError, match="size of 'org/mystery' is unknown"):
        params_b("org/mystery")


def test_gpus_and_nodes_are_checked():
    assert parse_gpus("8xH100") == (8, "H100") and parse_gpus("4 x h100") == (4, "H100")
    with pytest.raises(UserError, match="no throughput assumptions for A100"):
        parse_gpus("8xA100")
    with pytest.raises(UserError, match="expected GPUs per node x type"):
        parse_gpus("H100")


def test_cli_prints_where_the_time_goes(capsys):
    assert main(["plan", "--profile", "llama3.1-8b", "--gpus", "8xH100", "--nodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "on 4 node(s) x 8xH100 (32 GPUs)" in out and "Where the time goes:" in out
    assert main(["plan", "--profile", "llama3.1-8b", "--nodes", "0"]) == 1
    assert "--nodes 0" in capsys.readouterr().err


def test_the_readme_holds_the_current_plan():
    """README's 'Planning a paper-scale run' shows what `fusechat plan` prints now, 1 node and 4 nodes."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    for nodes in (1, 4):
        text = render(make_plan(load_profile("llama3.1-8b"), "8xH100", nodes))
        stage_table = text.split("\n\n")[2]
        assert stage_table in readme, f"README lacks the {nodes}-node stage table: run fusechat plan and paste it"

"""04_pairs: every pairing rule pinned on hand-made score tables (recipe §1.4)."""

import numpy as np
import pandas as pd
import pytest

from fusechat_utils import pairs
from fusechat_utils.pairs import PairsConfig, build_sets, plan


def rows(prompt_id, category, scores, dataset=None, correct=None, passed=None):
    """scores: [(source, rm_score), ...] -> scored rows; sample_index counts within a source."""
    dataset = dataset or {"general": "UltraFeedback", "math": "OpenMathInstruct-2", "code": "leetcode",
                          "chinese": "alpaca_gpt4_zh"}[category]
    out, seen = [], {}
    for i, (source, score) in enumerate(scores):
        k = seen[source] = seen.get(source, -1) + 1
        ok = None if passed is None else passed[i]
        out.append({"prompt_id": prompt_id, "dataset": dataset, "category": category, "source_model": source,
                    "sample_index": k, "seed": k, "prompt": f"prompt {prompt_id}",
                    "response": f"{prompt_id} {source} #{k}", "rm_score": score,
                    "correct": None if correct is None else correct[i], "static_ok": ok, "tests_passed": ok})
    return out


def table(*groups):
    return pd.DataFrame([r for g in groups for r in g])


def only_dpo(**kw):
    return dict(sft_ratio=0.0, **kw)


def test_general_pair_is_best_vs_worst_of_the_best_responses_source():
    df = table(rows("p", "general", [("A", 0.50), ("A", 0.45), ("A", 0.47), ("B", 0.49), ("B", 0.30)]))
    sft, dpo = build_sets(df, **only_dpo())
    assert sft.empty and len(dpo) == 1
    pair = dpo.iloc[0]
    assert pair["source_model"] == "A" and pair["rejected_source_model"] == "A"
    assert (pair["chosen_score"], pair["rejected_score"]) == (0.50, 0.45)
    assert pair["chosen"][0]["content"] == "p A #0" and pair["rejected"][0]["content"] == "p A #1"


def test_best_response_source_out_of_window_drops_but_best_valid_takes_another_source():
    df = table(rows("p", "general", [("A", 0.90), ("A", 0.20), ("B", 0.60), ("B", 0.55), ("C", 0.58), ("C", 0.50)]))
    assert build_sets(df, **only_dpo())[1].empty
    assert plan(df, **only_dpo())["reason"].tolist() == ["gap_above"]
    dpo = build_sets(df, **only_dpo(pair_source="best_valid"))[1]
    assert dpo["source_model"].tolist() == ["B"]  # B's chosen 0.60 beats C's 0.58
    assert dpo["chosen_score"].tolist() == [0.60]


@pytest.mark.parametrize("hi, lo, inclusive, kept", [
    (0.11, 0.01, True, True),      # 0.11 - 0.01 = 0.09999999999999999: on the upper bound
    (0.53, 0.52, True, True),      # 0.010000000000000009: on the lower bound
    (0.11, 0.01, False, False),
    (0.53, 0.52, False, False),
    (0.1 + 0.01 + 1e-5, 0.01, True, False),  # beyond the tolerance
    (0.52 + 0.01 - 1e-5, 0.52, True, False),
    (0.30, 0.25, False, True),
])
def test_gap_bounds_with_float_tolerance(hi, lo, inclusive, kept):
    df = table(rows("p", "general", [("A", hi), ("A", lo)]))
    assert len(build_sets(df, **only_dpo(gap_inclusive=inclusive))[1]) == int(kept)


def test_float32_scores_on_the_bounds_count_as_on_them():
    hi, lo = float(np.float32(0.6)), float(np.float32(0.5))
    assert hi - lo > 0.1  # 0.10000002384185791
    df = table(rows("p", "general", [("A", hi), ("A", lo)]))
    assert len(build_sets(df, **only_dpo())[1]) == 1
    assert build_sets(df, **only_dpo(gap_tol=0.0))[1].empty


def test_ties_break_by_source_name_then_sample_index():
    df = table(rows("p", "general", [("B", 0.5), ("A", 0.5), ("A", 0.5), ("A", 0.45), ("A", 0.45), ("B", 0.4)]))
    pair = build_sets(df, **only_dpo())[1].iloc[0]
    assert pair["source_model"] == "A"
    assert pair["chosen"][0]["content"] == "p A #0"
    assert pair["rejected"][0]["content"] == "p A #2"  # lowest 0.45, first sample_index
    sft = build_sets(df, sft_ratio=1.0)[0]
    assert sft["conversations"].iloc[0][1]["value"] == "p A #0"


def test_a_single_response_or_identical_texts_make_no_pair():
    single = table(rows("p", "general", [("A", 0.5)]))
    assert build_sets(single, **only_dpo(gap_min=0.0))[1].empty
    assert plan(single, **only_dpo())["reason"].tolist() == ["no_pair"]
    same = table(rows("q", "general", [("A", 0.5), ("A", 0.45)]))
    same["response"] = "same text"
    assert build_sets(same, **only_dpo())[1].empty


def test_math_rules():
    # Q: correct 0.60/0.58, incorrect 0.62 (higher RM, still rejected-only) and 0.55 -> pair 0.60 vs 0.55
    df = table(rows("m", "math", [("Q", 0.60), ("Q", 0.58), ("Q", 0.62), ("Q", 0.55)],
                    correct=[True, True, False, False]))
    sft, dpo = build_sets(df)
    assert sft.empty and (dpo["chosen_score"].tolist(), dpo["rejected_score"].tolist()) == ([0.60], [0.55])
    # no incorrect response: SFT with the best correct one, never an incorrect one
    only_right = table(rows("n", "math", [("Q", 0.60), ("Q", 0.90)], correct=[True, None]))  # None: unverified
    sft, dpo = build_sets(only_right)
    assert dpo.empty and sft["rm_score"].tolist() == [0.60]
    # no correct response: dropped
    wrong = table(rows("w", "math", [("Q", 0.6), ("Q", 0.5)], correct=[False, False]))
    assert [len(x) for x in build_sets(wrong)] == [0, 0]
    assert plan(wrong)["reason"].tolist() == ["none_correct"]


def test_math_best_response_source_without_incorrect_goes_to_sft():
    df = table(rows("m", "math", [("Llama-405B", 0.70), ("Q", 0.60), ("Q", 0.55)], correct=[True, True, False]))
    sft, dpo = build_sets(df)
    assert dpo.empty and sft["source_model"].tolist() == ["Llama-405B"]
    sft, dpo = build_sets(df, math_pair_source="best_valid")  # the paper profiles' math rule
    assert sft.empty and dpo["source_model"].tolist() == ["Q"]
    assert build_sets(df, pair_source="best_valid")[1].empty  # pairs_pair_source is the other categories' rule


def test_math_bool_dtype_column_from_parquet(tmp_path):
    df = table(rows("m", "math", [("Q", 0.60), ("Q", 0.55)], correct=[True, False]))
    df["correct"] = df["correct"].astype(bool)
    df.to_parquet(tmp_path / "s.parquet")
    assert len(build_sets(pd.read_parquet(tmp_path / "s.parquet"))[1]) == 1


def test_code_all_failing_is_dropped_and_pass_fail_pairs_follow_the_gap_param():
    fail = table(rows("c", "code", [("A", 0.6), ("A", 0.5)], passed=[False, False]))
    assert [len(x) for x in build_sets(fail)] == [0, 0]
    assert plan(fail)["reason"].tolist() == ["all_fail"]
    wide = table(rows("d", "code", [("A", 0.9), ("A", 0.2), ("A", 0.3)], passed=[True, False, True]))
    sft, dpo = build_sets(wide)
    assert dpo.empty and sft["rm_score"].tolist() == [0.9]  # gap 0.7: outside the window, best passing to SFT
    sft, dpo = build_sets(wide, code_gap_filter=False)
    assert sft.empty and (dpo["chosen_score"].tolist(), dpo["rejected_score"].tolist()) == ([0.9], [0.2])


def test_code_static_failure_counts_as_failing():
    df = table(rows("c", "code", [("A", 0.6), ("A", 0.55)], passed=[True, True]))
    df.loc[1, "static_ok"] = False
    dpo = build_sets(df)[1]
    assert dpo["rejected_score"].tolist() == [0.55]


def test_cross_source_pairs_best_overall_against_worst_overall():
    df = table(rows("p", "general", [("A", 0.50), ("A", 0.48), ("B", 0.45), ("B", 0.47)]))
    pair = build_sets(df, **only_dpo(pairing="cross_source"))[1].iloc[0]
    assert (pair["source_model"], pair["rejected_source_model"]) == ("A", "B")
    assert (pair["chosen_score"], pair["rejected_score"]) == (0.50, 0.45)


def test_chinese_is_sft_only_with_the_best_response():
    df = table(rows("z", "chinese", [("Qwen", 0.5), ("Qwen", 0.45)]))
    sft, dpo = build_sets(df, sft_ratio=0.0)
    assert dpo.empty and sft["rm_score"].tolist() == [0.5]
    assert sft["conversations"].iloc[0] == [{"from": "human", "value": "prompt z"}, {"from": "gpt", "value": "z Qwen #0"}]


def many_general(n, dataset="UltraFeedback", valid=None):
    valid = valid if valid is not None else [True] * n
    return table(*[rows(f"{dataset}-{i:03d}", "general", [("A", 0.5), ("A", 0.45 if ok else 0.1)], dataset=dataset)
                   for i, ok in enumerate(valid)])


def test_filter_then_split_is_floor_04_per_dataset_and_drops_unpaired():
    df = pd.concat([many_general(25, valid=[i % 5 != 0 for i in range(25)]), many_general(10, "HelpSteer2")])
    sft, dpo = build_sets(df)
    counts = lambda d: d.groupby("dataset").size().to_dict()  # noqa: E731
    assert counts(sft) == {"UltraFeedback": 8, "HelpSteer2": 4}  # floor(0.4*20), floor(0.4*10)
    assert counts(dpo) == {"UltraFeedback": 12, "HelpSteer2": 6}
    assert not set(sft["prompt_id"]) & set(dpo["prompt_id"])


def test_split_then_filter_splits_every_prompt_first():
    df = many_general(20, valid=[i % 2 == 0 for i in range(20)])
    sft, dpo = build_sets(df, split_order="split_then_filter")
    assert len(sft) == 8
    dpo_side = set(df["prompt_id"]) - set(sft["prompt_id"])
    valid = {f"UltraFeedback-{i:03d}" for i in range(0, 20, 2)}
    assert set(dpo["prompt_id"]) == dpo_side & valid


def test_split_is_deterministic_by_seed_and_independent_of_row_order():
    df = many_general(30)
    a = set(build_sets(df, seed=0)[0]["prompt_id"])
    shuffled = df.sample(frac=1.0, random_state=7)
    assert set(build_sets(shuffled, seed=0)[0]["prompt_id"]) == a
    assert set(build_sets(df, seed=1)[0]["prompt_id"]) != a
    assert len(build_sets(df, sft_ratio=0.5)[0]) == 15


def test_bad_input_names_the_row_and_field():
    df = table(rows("p", "general", [("A", 0.5), ("A", float("nan"))]))
    with pytest.raises(ValueError, match=r"row 1 .*prompt_id p, A #1.*'rm_score'"):
        build_sets(df)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rm_score'\]"):
        build_sets(df.drop(columns="rm_score"))
    with pytest.raises(ValueError, match="pairing='both'"):
        build_sets(df, pairing="both")


def test_run_writes_the_released_schemas_readable_by_datasets(tmp_path):
    import datasets

    scored = pd.concat([many_general(5), table(rows("z", "chinese", [("Qwen", 0.3)]))], ignore_index=True)
    (tmp_path / "03_scoring").mkdir()
    scored.to_parquet(tmp_path / "03_scoring" / "scored.parquet")
    result = pairs.run(PairsConfig(run_dir=str(tmp_path)))
    assert (result["n_sft"], result["n_dpo"]) == (3, 3)
    dpo = datasets.load_dataset("parquet", data_files=str(tmp_path / "04_pairs" / "dpo.parquet"))["train"]
    assert dpo[0]["prompt"][0]["role"] == "user" and dpo[0]["chosen"][0]["role"] == "assistant"
    sft = datasets.load_dataset("parquet", data_files=str(tmp_path / "04_pairs" / "sft.parquet"))["train"]
    assert [t["from"] for t in sft[0]["conversations"]] == ["human", "gpt"]
    comp = pd.read_csv(tmp_path / "04_pairs" / "composition.csv").set_index("dataset")
    assert comp.loc["UltraFeedback", ["SFT", "DPO"]].tolist() == [2, 3]
    reasons = pd.read_csv(tmp_path / "04_pairs" / "reasons.csv")
    assert reasons["prompts"].sum() == 6


def test_an_empty_table_gives_empty_sets_with_the_schemas():
    empty = table(rows("p", "general", [("A", 0.5)])).iloc[:0]
    sft, dpo = build_sets(empty)
    assert list(sft.columns) == pairs.SFT_COLUMNS and list(dpo.columns) == pairs.DPO_COLUMNS
    assert sft.empty and dpo.empty


def test_real_armorm_scores_of_magpie_rows_with_the_paper_window():
    """Magpie-Pro-DPO rows carry 5 Llama-3-8B responses with their real ArmoRM scores: the paper's rules on them."""
    import json
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "real_samples" / "Magpie-Align__Magpie-Pro-DPO-100K-v0.1.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    scored = pd.DataFrame([
        {"prompt_id": r["uuid"], "dataset": "Magpie-Pro-DPO-100K-v0.1", "category": "general",
         "source_model": r["gen_response_configs"]["output_generator"], "sample_index": k, "prompt": r["instruction"],
         "response": text, "rm_score": reward["score"]}
        for r in records for k, (text, reward) in enumerate(zip(r["responses"], r["rewards_armorm"]))])
    gaps = {r["uuid"]: max(s["score"] for s in r["rewards_armorm"]) - min(s["score"] for s in r["rewards_armorm"])
            for r in records}
    in_window = {u for u, g in gaps.items() if 0.01 <= g <= 0.1}
    assert 0 < len(in_window) < len(records)  # the real gaps straddle the lower bound
    sft, dpo = build_sets(scored)
    assert set(sft["prompt_id"]) | set(dpo["prompt_id"]) == in_window
    assert len(sft) == int(0.4 * len(in_window))
    for _, pair in dpo.iterrows():
        record = next(r for r in records if r["uuid"] == pair["prompt_id"])
        scores = [s["score"] for s in record["rewards_armorm"]]
        assert pair["chosen"][0]["content"] == record["responses"][int(np.argmax(scores))]
        assert pair["rejected"][0]["content"] == record["responses"][int(np.argmin(scores))]


def test_leave_one_source_out_drops_that_sources_responses(tmp_path):
    from fusechat_utils.pairs import PairsConfig, run

    rows = [{"prompt_id": "p1", "dataset": "UltraFeedback", "category": "general", "source_model": src,
             "sample_index": i, "seed": i, "prompt": "Reverse the word: abc", "response": f"{src}-{i}",
             "finish_reason": "stop", "n_tokens": 3, "gold_answer": None, "rm_score": score, "correct": None,
             "static_ok": None, "tests_passed": None, "verify_reason": None}
            for src, scores in (("a", [1.0, 0.9]), ("b", [0.5, 0.2])) for i, score in enumerate(scores)]
    (tmp_path / "03_scoring").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "03_scoring" / "scored.parquet")
    kw = dict(run_dir=str(tmp_path), pairs_sft_ratio=0.0, pairs_gap_min=0.01, pairs_gap_max=1.0)
    assert set(run(PairsConfig(**kw))["dpo"]["source_model"]) == {"a"}
    assert set(run(PairsConfig(**kw, pairs_exclude_sources=["a"]))["dpo"]["source_model"]) == {"b"}
    with pytest.raises(ValueError, match="pairs_exclude_sources"):
        run(PairsConfig(**kw, pairs_exclude_sources=["c"]))

"""07_eval end to end on a tiny world: stages found or skipped, tidy results table, every sample recorded."""

import json
import shutil

import pandas as pd
import pytest

from eval_world import TOY_ROWS, build_models, write_toy_benchmarks
from fusechat_utils.evaluation import EvalConfig, run
from fusechat_utils.evaluation.step import RESULT_COLUMNS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalworld")
    paths = build_models(root)
    paths["bench"] = write_toy_benchmarks(root / "bench")
    return root, paths


def make_cfg(run_dir, paths, **kw):
    # the toy profile leaves HumanEval out; these tests run it
    kw = {"eval_benchmarks": ["toy", "HumanEval"], "eval_limit": 4, "eval_max_tokens_cap": 16, **kw}
    return EvalConfig(run_dir=str(run_dir), target_model=paths["target"], eval_toy_benchmarks_dir=paths["bench"],
                      eval_reward_model=paths["reward"], eval_max_new_tokens=8, **kw)


def test_base_and_sft_are_evaluated_dpo_is_skipped_with_a_note(world):
    root, paths = world
    run_dir = root / "run_a"
    shutil.copytree(paths["target"], run_dir / "05_sft" / "model")
    table = run(make_cfg(run_dir, paths))
    saved = pd.read_csv(run_dir / "07_eval" / "results.csv")
    assert list(saved.columns) == RESULT_COLUMNS
    assert set(saved.stage) == {"base", "sft"}
    toy = {"toy_math", "toy_code", "toy_general", "toy_chinese"}
    expected = toy | {f"{b}_length" for b in toy} | {"HumanEval"}  # each toy benchmark's mean response length too
    assert set(saved[saved.stage == "base"].benchmark) == expected
    assert set(saved[saved.stage == "sft"].benchmark) == expected | {"toy_if_winrate"}
    # The sft model is a copy of the base: greedy outputs are identical, so every comparison is a tie.
    winrate = saved[saved.benchmark == "toy_if_winrate"].iloc[0]
    assert winrate.value == 50.0 and winrate.n == 2
    assert saved.value.between(0, 100).all() and len(table) == len(saved)
    he = saved[(saved.stage == "base") & (saved.benchmark == "HumanEval")].iloc[0]
    assert he.metric == "pass@1" and he.n == 4
    settings = json.loads((run_dir / "07_eval" / "eval_settings.json").read_text())
    assert any(n.startswith("dpo:") for n in settings["notes"])
    assert settings["toy_decoding"]["do_sample"] is False and "HumanEval" in settings["benchmarks"]
    assert settings["benchmarks"]["HumanEval"]["decoding"]["max_tokens"] == 2048 and settings["max_tokens_cap"] == 16


def test_every_sample_is_recorded_per_stage_and_benchmark(world):
    root, paths = world
    run_dir = root / "run_b"
    run(make_cfg(run_dir, paths, eval_benchmarks=["toy"]))
    samples = run_dir / "07_eval" / "samples" / "base"
    n = {p.stem: len(p.read_text().splitlines()) for p in samples.glob("*.jsonl")}
    assert n == {"toy_math": 1, "toy_code": 1, "toy_general": 2, "toy_chinese": 1}
    row = json.loads((samples / "toy_general.jsonl").read_text().splitlines()[0])
    assert row["prompt"] == TOY_ROWS[2]["prompt"] and isinstance(row["response"], str)


def test_explicit_models_and_unrunnable_paper_benchmarks_are_noted(world):
    root, paths = world
    run_dir = root / "run_c"
    cfg = make_cfg(run_dir, paths, eval_models={"base": paths["target"]}, eval_benchmarks=["LiveBench 0831", "toy"])
    table = run(cfg)
    assert set(table.stage) == {"base"} and "LiveBench 0831" not in set(table.benchmark)
    notes = json.loads((run_dir / "07_eval" / "eval_settings.json").read_text())["notes"]
    assert any("LiveBench 0831" in n and "import-results" in n for n in notes)


def test_an_unreachable_judge_stops_the_run_naming_it_and_keeps_what_was_done(world, monkeypatch):
    from fusechat_utils.evaluation.judge import JudgeError

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    root, paths = world
    run_dir = root / "run_judge"
    cfg = make_cfg(run_dir, paths, eval_models={"base": paths["target"]}, eval_benchmarks=["toy", "MT-Bench"],
                   eval_limit=1, eval_judge_base_url="http://127.0.0.1:9/v1", eval_judge_max_retries=0)
    with pytest.raises(JudgeError, match=r"judge 'gpt-4-0125-preview' at http://127\.0\.0\.1:9/v1"):
        run(cfg)
    assert (run_dir / "07_eval" / "parts" / "base" / "toy.json").exists()  # committed before the judge failed


def test_unknown_benchmark_and_backend_are_errors(world):
    root, paths = world
    with pytest.raises(ValueError, match="eval_backend"):
        make_cfg(root / "x", paths, eval_backend="tgi")
    with pytest.raises(ValueError, match="unknown benchmark 'gsm9k'"):
        make_cfg(root / "x", paths, eval_benchmarks=["gsm9k"])


FIX = __import__("pathlib").Path(__file__).parent / "fixtures" / "benchmarks"


@pytest.mark.slow
def test_an_oracle_model_scores_100_through_07_on_real_files(world, monkeypatch):
    """Each prompt answered with its item's reference: the registry's load -> prompt -> generate -> grade chain keeps
    items and responses aligned, n samples included (LiveCodeBench), and FuseEval's decoding reaches the backend."""
    from fusechat_utils.evaluation import runners
    from fusechat_utils.evaluation.registry import REGISTRY, family_of
    from fusechat_utils.models import load_tokenizer

    root, paths = world
    files = {"AMC 23": str(FIX / "amc23_test.jsonl"), "LiveCodeBench 2408-2411": str(FIX / "livecodebench_test.jsonl")}
    names = ["GSM8K", "MATH", "AMC 23", "MMLU-Pro", "MBPP", "HumanEval", "LiveCodeBench 2408-2411"]
    cfg = make_cfg(root / "run_d", paths, eval_models={"base": paths["target"]}, eval_benchmarks=names,
                   eval_data_files=files, eval_limit=3, eval_lcb_window=["2024-08-01", "2024-11-30"])
    seen = {}

    def oracle(cfg_, model, texts, decoding, label=""):
        tok, family = load_tokenizer(model), family_of(model)
        answers = {}
        for name in names:
            bench = REGISTRY[name]
            for item in runners.load_entry(cfg_, bench):
                answers[bench.impl().build_prompt(item, family, tok)] = bench.impl().oracle_response(item)
        seen[texts[0]] = decoding
        return [[answers[t]] * int(decoding.get("n") or 1) for t in texts]

    monkeypatch.setattr(runners, "generate_texts", oracle)
    table = run(cfg).set_index("benchmark")
    assert table.value.to_dict() == {n: 100.0 for n in names}
    assert table.loc["LiveCodeBench 2408-2411", "n"] == 2  # the fixture's rows inside 2408-2411
    assert {d["max_tokens"] for d in seen.values()} == {16}  # eval_max_tokens_cap applied
    assert sorted(d.get("n", 1) for d in seen.values())[-1] == 10  # LiveCodeBench samples 10


@pytest.mark.slow
def test_the_notebook_runs_with_papermill_on_the_tiny_world(world, tmp_path):
    import papermill

    from fusechat_utils.steps import notebook_path

    root, paths = world
    params = {"run_dir": str(root / "run_nb"), "target_model": paths["target"], "eval_reward_model": paths["reward"],
              "eval_toy_benchmarks_dir": paths["bench"], "eval_limit": 2, "eval_max_tokens_cap": 8, "eval_max_new_tokens": 4,
              "eval_benchmarks": ["toy", "HumanEval"]}
    papermill.execute_notebook(str(notebook_path("07_eval")), str(tmp_path / "out.ipynb"), parameters=params,
                               progress_bar=False)
    assert set(pd.read_csv(root / "run_nb" / "07_eval" / "results.csv").benchmark) >= {"HumanEval", "toy_math"}


def test_a_models_hash_ignores_trainer_paths_and_what_a_killed_save_left_behind(tmp_path):
    """A save killed mid-write leaves a hidden temporary file in the model folder; the resumed save writes the same
    weights beside it. 07 must see the same model (it keeps its committed results), not a new one."""
    from fusechat_utils.evaluation.runners import model_hash

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    before = model_hash(str(model))
    (model / ".tmpjckDTS").write_bytes(b"half a save")
    (model / "training_args.bin").write_bytes(b"trainer paths")
    assert model_hash(str(model)) == before
    (model / "model.safetensors").write_bytes(b"other weights")
    assert model_hash(str(model)) != before

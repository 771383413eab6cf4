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
    kw = {"eval_benchmarks": ["toy", "humaneval"], **kw}  # the toy profile leaves HumanEval out; these tests run it
    return EvalConfig(run_dir=str(run_dir), target_model=paths["target"], eval_toy_benchmarks_dir=paths["bench"],
                      eval_reward_model=paths["reward"], eval_humaneval_limit=4, eval_max_new_tokens=8, **kw)


def test_base_and_sft_are_evaluated_dpo_is_skipped_with_a_note(world):
    root, paths = world
    run_dir = root / "run_a"
    shutil.copytree(paths["target"], run_dir / "05_sft" / "model")
    table = run(make_cfg(run_dir, paths))
    saved = pd.read_csv(run_dir / "07_eval" / "results.csv")
    assert list(saved.columns) == RESULT_COLUMNS
    assert set(saved.stage) == {"base", "sft"}
    expected = {"toy_math", "toy_code", "toy_general", "toy_chinese", "HumanEval"}
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
    assert settings["decoding"]["do_sample"] is False and "HumanEval" in settings["benchmarks"]


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
    cfg = make_cfg(run_dir, paths, eval_models={"base": paths["target"]}, eval_benchmarks=["MT-Bench", "toy"])
    table = run(cfg)
    assert set(table.stage) == {"base"} and "MT-Bench" not in set(table.benchmark)
    notes = json.loads((run_dir / "07_eval" / "eval_settings.json").read_text())["notes"]
    assert any("MT-Bench" in n for n in notes)


def test_unknown_benchmark_and_backend_are_errors(world):
    root, paths = world
    with pytest.raises(ValueError, match="eval_backend"):
        make_cfg(root / "x", paths, eval_backend="tgi")
    with pytest.raises(ValueError, match="unknown benchmark 'gsm9k'"):
        run(make_cfg(root / "x", paths, eval_benchmarks=["gsm9k"]))


FIX = __import__("pathlib").Path(__file__).parent / "fixtures" / "benchmarks"


def test_paper_benchmarks_from_local_real_format_files_with_an_oracle_model(world, monkeypatch):
    from fusechat_utils.evaluation import runners

    oracle = {"Cities $A$": "\\boxed{27}", "remove first and last": "```python\ndef remove_Occ(s, ch):\n"
              "    i = s.find(ch)\n    s = s[:i] + s[i + 1:]\n    j = s.rfind(ch)\n    return s[:j] + s[j + 1:]\n```",
              "A+B": "```python\na, b = map(int, input().split())\nprint(a + b)\n```"}
    answer = lambda p: next((v for k, v in oracle.items() if k in p), "no idea")  # noqa: E731
    monkeypatch.setattr(runners, "generate_for", lambda cfg, model, prompts: [answer(p) for p in prompts])
    root, paths = world
    files = {"AMC 23": str(FIX / "amc23_test.jsonl"), "MBPP": str(FIX / "mbpp_test.jsonl"),
             "LiveCodeBench 2408-2411": str(FIX / "livecodebench_test.jsonl")}
    cfg = make_cfg(root / "run_d", paths, eval_models={"base": "oracle"}, eval_benchmarks=list(files),
                   eval_data_files=files)
    table = run(cfg).set_index("benchmark")
    assert table.value.tolist() == [100.0, 100.0, 100.0]
    assert table.loc["LiveCodeBench 2408-2411", "n"] == 1  # the May 2024 problem is outside the window
    assert table.loc["MBPP", "metric"] == "pass@1" and table.loc["AMC 23", "metric"] == "accuracy"


def test_mt_bench_from_its_question_file_through_a_local_judge(world, monkeypatch):
    import threading
    from http.server import HTTPServer

    from fusechat_utils.evaluation import runners
    from test_eval_adapters import FakeJudge

    monkeypatch.setattr(runners, "generate_for", lambda cfg, model, prompts: ["Hawaii!" if "Hawaii" in p else "3"
                                                                              for p in prompts])
    server = HTTPServer(("127.0.0.1", 0), FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root, paths = world
        cfg = make_cfg(root / "run_e", paths, eval_models={"base": "m"}, eval_benchmarks=["MT-Bench"],
                       eval_data_files={"MT-Bench": str(FIX / "mt_bench_question.jsonl")},
                       eval_judge_base_url=f"http://127.0.0.1:{server.server_port}/v1", eval_judge_model="fake")
        row = run(cfg).iloc[0]
    finally:
        server.shutdown()
    assert (row.benchmark, row.metric, row.value, row.n) == ("MT-Bench", "score_1_10", 5.5, 2)
    judged = (root / "run_e" / "07_eval" / "samples" / "base" / "MT-Bench.jsonl").read_text()
    assert "[[9]]" in judged and "[[2]]" in judged


def test_the_notebook_runs_with_papermill_on_the_tiny_world(world, tmp_path):
    import papermill

    from fusechat_utils.steps import notebook_path

    root, paths = world
    params = {"run_dir": str(root / "run_nb"), "target_model": paths["target"], "eval_reward_model": paths["reward"],
              "eval_toy_benchmarks_dir": paths["bench"], "eval_humaneval_limit": 2, "eval_max_new_tokens": 4,
              "eval_benchmarks": ["toy", "humaneval"]}
    papermill.execute_notebook(str(notebook_path("07_eval")), str(tmp_path / "out.ipynb"), parameters=params,
                               progress_bar=False)
    assert set(pd.read_csv(root / "run_nb" / "07_eval" / "results.csv").benchmark) >= {"HumanEval", "toy_math"}

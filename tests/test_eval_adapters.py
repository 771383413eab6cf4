"""Paper-benchmark adapters on fixtures in each benchmark's real format: parsing, prompts, scoring, judging."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from fusechat_utils.evaluation import formats, judge, winrate
from fusechat_utils.evaluation.adapters import BENCHMARKS, MATH_INSTRUCTION, lm_eval_kwargs
from fusechat_utils.paper import paper_table

FIX = Path(__file__).parent / "fixtures" / "benchmarks"


def test_the_registry_has_exactly_the_papers_14_benchmarks_with_their_labels():
    paper = set(paper_table("benchmarks").benchmark) - {"Average"}
    assert set(BENCHMARKS) == paper and len(paper) == 14
    lm_eval = {b.name: b.lm_eval_task for b in BENCHMARKS.values() if b.lm_eval_task}
    assert set(lm_eval) == {"GSM8K", "MATH", "MMLU-Pro", "MMLU-redux", "GPQA-Diamond"}
    assert "MMLU" in BENCHMARKS["MMLU-redux"].differs and "2024-06-30" in BENCHMARKS["LiveCodeBench 2408-2411"].differs
    kw = lm_eval_kwargs("meta-llama/Llama-3.1-8B-Instruct", "gsm8k_cot_zeroshot", 2048)
    assert kw["model"] == "vllm" and kw["apply_chat_template"] and "do_sample=False" in kw["gen_kwargs"]


@pytest.mark.parametrize("name,file,right,wrong", [
    ("GSM8K", "gsm8k_test.jsonl", "48 + 24 = 72. The answer is \\boxed{72}.", "\\boxed{70}"),
    ("MATH", "math_test.jsonl", "So the sum is \\boxed{\\frac{5}{6}}", "\\boxed{\\frac{1}{6}}"),
    ("AMC 23", "amc23_test.jsonl", "They meet after 1.5 h, so \\boxed{27}", "\\boxed{18}"),
])
def test_math_benchmarks_parse_gold_and_score_with_math_verify(name, file, right, wrong):
    item = formats.load_items(name, FIX / file)[0]
    assert item["prompt"].endswith(MATH_INSTRUCTION)
    assert formats.score(name, item, right) and not formats.score(name, item, wrong)


def test_gsm8k_gold_drops_thousands_separators_and_math_gold_is_the_last_boxed():
    assert formats.load_items("GSM8K", FIX / "gsm8k_test.jsonl")[1]["gold"] == "2000"
    assert formats.load_items("MATH", FIX / "math_test.jsonl")[0]["gold"] == "\\frac{5}{6}"
    assert formats.load_items("AMC 23", FIX / "amc23_test.jsonl")[0]["gold"] == "27"


@pytest.mark.parametrize("name,file", [("MMLU-Pro", "mmlu_pro_test.jsonl"), ("MMLU-redux", "mmlu_redux_test.jsonl"),
                                       ("GPQA-Diamond", "gpqa_diamond.jsonl")])
def test_multiple_choice_prompts_list_letters_and_the_regex_chain_scores(name, file):
    item = formats.load_items(name, FIX / file)[0]
    assert "(A) " in item["prompt"] and item["prompt"].endswith("Answer: Let's think step by step.")
    gold = item["gold"]
    other = "A" if gold != "A" else "B"
    assert formats.score(name, item, f"... so the answer is ({gold}).")
    assert formats.score(name, item, f"Reasoning.\nAnswer: {gold}")
    assert not formats.score(name, item, f"the answer is ({other})")


def test_gpqa_correct_option_is_shuffled_and_stays_found():
    item = formats.load_items("GPQA-Diamond", FIX / "gpqa_diamond.jsonl")[0]
    assert f"({item['gold']}) 10^-4 eV" in item["prompt"]


def test_mbpp_runs_the_reference_code_against_its_asserts():
    item = formats.load_items("MBPP", FIX / "mbpp_test.jsonl")[0]
    code = json.loads((FIX / "mbpp_test.jsonl").read_text().splitlines()[0])["code"]
    assert "assert remove_Occ" in item["prompt"]
    assert formats.score("MBPP", item, f"```python\n{code}\n```")
    assert not formats.score("MBPP", item, "```python\ndef remove_Occ(s, ch):\n    return s\n```")


def test_livecodebench_stdin_cases_and_the_date_window():
    items = formats.load_items("LiveCodeBench 2408-2411", FIX / "livecodebench_test.jsonl")
    assert [formats.in_window(i) for i in items] == [True, False]
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert formats.score("LiveCodeBench 2408-2411", items[0], good)
    assert not formats.score("LiveCodeBench 2408-2411", items[0], "```python\nprint(3)\n```")


def test_judged_benchmarks_parse_turns_and_references():
    mt = formats.load_items("MT-Bench", FIX / "mt_bench_question.jsonl")
    assert len(mt[0]["turns"]) == 2 and mt[1]["reference"] == "Area is 3" and mt[1]["category"] == "math"
    arena = formats.load_items("Arena-Hard (WR %)", FIX / "arena_hard_question.jsonl")[0]
    assert arena["prompt"].startswith("Use ABC notation")
    align = formats.load_items("AlignBench v1.1", FIX / "alignbench_data_v1.1.jsonl")[0]
    assert "单簧管" in align["prompt"] and align["reference"]
    assert "Reference Answer" in judge.single_prompt(mt[1], "3") and "Reference" not in judge.single_prompt(mt[0], "x")


def test_livebench_and_alpacaeval_rows_parse():
    lb = formats.load_items("LiveBench 0831", FIX / "livebench_question.jsonl")[0]
    assert lb["gold"] == "16" and lb["task"] == "math_comp" and lb["release"] == "2024-08-31"
    ae = formats.load_items("AlpacaEval-2 (LC %)", FIX / "alpaca_eval.json")
    assert len(ae) == 2 and ae[0]["prompt"].startswith("What are the names") and ae[0]["baseline"]
    assert set(formats.PARSERS) == set(BENCHMARKS) - {"HumanEval"}


def test_a_row_missing_a_field_names_the_file_row_and_field(tmp_path):
    bad = tmp_path / "gsm.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"gsm\.jsonl: row 2: field 'answer'"):
        formats.load_items("GSM8K", bad)


def test_verdict_parsers():
    assert judge.parse_rating("Good answer. Rating: [[8]]") == 8.0 and judge.parse_rating("no rating") is None
    assert judge.arena_outcome("My final verdict is [[B>A]]") == 1.0
    assert judge.arena_outcome("[[A>>B]]") == 0.0 and judge.arena_outcome("[[A=B]]") == 0.5
    assert judge.arena_outcome("[[A>B]] or [[B>A]]") is None


class FakeJudge(BaseHTTPRequestHandler):
    """OpenAI-compatible /chat/completions: rates 9 if the answer mentions 'Hawaii', else 2; prefers longer B."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        if "[[A>>B]]" in prompt:
            a, b = re.findall(r"<\|The Start of Assistant [AB]'s Answer\|>\n(.*?)\n<\|The End", prompt, re.DOTALL)
            text = "[[B>A]]" if len(b) > len(a) else "[[A>B]]"
        else:
            text = "Rating: [[9]]" if "Hawaii" in prompt.split("Assistant's Answer]")[1] else "Rating: [[2]]"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture()
def judge_url():
    server = HTTPServer(("127.0.0.1", 0), FakeJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_mt_bench_and_arena_hard_through_an_openai_compatible_judge(judge_url):
    mt = formats.load_items("MT-Bench", FIX / "mt_bench_question.jsonl")
    rows = judge.judge_single(judge_url, "fake", mt, ["Aloha from Hawaii!", "The area is 3."])
    assert [r["score"] for r in rows] == [9.0, 2.0]
    arena = formats.load_items("Arena-Hard (WR %)", FIX / "arena_hard_question.jsonl")
    rows = judge.judge_pairwise(judge_url, "fake", arena * 2, ["X:1\nK:G\n|GABc|dedB|", "no"], ["short one", "longer"])
    assert [r["outcome"] for r in rows] == [1.0, 0.0]


def test_alpacaeval_lc_win_rate_offline_on_the_real_instruction_file():
    rows = json.loads((FIX / "alpaca_eval.json").read_text())
    assert {"instruction", "output", "generator", "dataset"} <= set(rows[0])
    base = [r["output"] for r in rows] * 10
    ours = [o + " more" * (i % 7) for i, o in enumerate(base)]
    prefs = [2.0 if i % 4 else 1.0 for i in range(len(base))]
    out = winrate.lc_win_rate(prefs, ours, base)
    assert out["win_rate"] == pytest.approx(75.0) and 0 < out["length_controlled_winrate"] < 100
    assert out["glm_name"] == "length_controlled_minimal"


def test_lm_eval_results_become_tidy_rows(monkeypatch):
    import lm_eval

    from fusechat_utils.evaluation.adapters import run_paper_benchmark
    from fusechat_utils.evaluation.step import EvalConfig

    seen = {}

    def fake_simple_evaluate(**kwargs):
        seen.update(kwargs)
        return {"results": {"gsm8k_cot_zeroshot": {
                    "alias": "gsm8k_cot_zeroshot", "exact_match,strict-match": 0.25,
                    "exact_match_stderr,strict-match": 0.1, "exact_match,flexible-extract": 0.5,
                    "exact_match_stderr,flexible-extract": 0.2}},
                "samples": {"gsm8k_cot_zeroshot": [{"doc_id": i, "resps": [["x"]]} for i in range(4)]}}

    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_simple_evaluate)
    rows, samples = run_paper_benchmark(EvalConfig(eval_backend="vllm"), "GSM8K", "dpo", "m")
    assert seen["tasks"] == ["gsm8k_cot_zeroshot"] and seen["model"] == "vllm"
    assert {(r["metric"], r["value"], r["stderr"], r["n"]) for r in rows} == {
        ("exact_match,strict-match", 25.0, 10.0, 4), ("exact_match,flexible-extract", 50.0, 20.0, 4)}
    assert len(samples["GSM8K"]) == 4

"""MT-Bench (FuseEval / FastChat llm_judge): the real question, reference and judge-prompt files; two-turn generation
through the real chat templates with a toy `generate`; both turns judged by a fake OpenAI-compatible judge on
loopback (templates, references, ratings, unrated turns, the cache); the exact judge prompt of a real math question
as FastChat renders it; bad input rows."""

import json
import math
import re
from pathlib import Path

import pytest

from fusechat_utils.chat_templates import family_tokenizer
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import mt_bench
from fusechat_utils.evaluation.judge import JudgeClient
from fusechat_utils.loopback_judge import LoopbackJudge

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "mt_bench"
QUESTIONS = DATA / "question.jsonl"

# FastChat common.py run_judge_single for question 112 (math) with FuseEval's gpt-4-0125-preview reference and the
# answers "$8000 + $4000 = $12000." / "Half of $4000: [[2000]] dollars." (system prompt of turn 1: "You are a helpful
# assistant.")
TURN1_USER = (
    '[Instruction]\n'
    'Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant '
    'to the user question displayed below. Your evaluation should consider correctness and helpfulness. '
    "You will be given a reference answer and the assistant's answer. Begin your evaluation by comparing "
    "the assistant's answer with the reference answer. Identify and correct any mistakes. Be as objective "
    'as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by '
    'strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n'
    '\n'
    '[Question]\n'
    'A tech startup invests $8000 in software development in the first year, and then invests half of that '
    'amount in software development in the second year.\n'
    "What's the total amount the startup invested in software development over the two years?\n"
    '\n'
    '[The Start of Reference Answer]\n'
    "To calculate the total amount invested in software development over the two years, let's break it down:\n"
    '\n'
    '1. First year investment: $8000\n'
    '2. Second year investment: Half of the first year, so $8000 / 2 = $4000\n'
    '\n'
    'Now, to find the total investment over the two years, we add these amounts together:\n'
    '\n'
    'Total investment = First year investment + Second year investment\n'
    'Total investment = $8000 + $4000\n'
    'Total investment = $12000\n'
    '\n'
    'Therefore, the startup invested a total of $12,000 in software development over the two years.\n'
    '[The End of Reference Answer]\n'
    '\n'
    "[The Start of Assistant's Answer]\n"
    '$8000 + $4000 = $12000.\n'
    "[The End of Assistant's Answer]")
TURN2_SYSTEM = (
    'Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant '
    'to the user question. Your evaluation should consider correctness and helpfulness. You will be given '
    "a reference answer and the assistant's answer. You evaluation should focus on the assistant's answer "
    "to the second question. Begin your evaluation by comparing the assistant's answer with the reference "
    'answer. Identify and correct any mistakes. Be as objective as possible. After providing your '
    'explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: '
    '"[[rating]]", for example: "Rating: [[5]]".\n'
    '\n')
TURN2_USER = (
    '<|The Start of Reference Answer|>\n'
    '\n'
    '### User:\n'
    'A tech startup invests $8000 in software development in the first year, and then invests half of that '
    'amount in software development in the second year.\n'
    "What's the total amount the startup invested in software development over the two years?\n"
    '\n'
    '### Reference answer:\n'
    "To calculate the total amount invested in software development over the two years, let's break it down:\n"
    '\n'
    '1. First year investment: $8000\n'
    '2. Second year investment: Half of the first year, so $8000 / 2 = $4000\n'
    '\n'
    'Now, to find the total investment over the two years, we add these amounts together:\n'
    '\n'
    'Total investment = First year investment + Second year investment\n'
    'Total investment = $8000 + $4000\n'
    'Total investment = $12000\n'
    '\n'
    'Therefore, the startup invested a total of $12,000 in software development over the two years.\n'
    '\n'
    '### User:\n'
    "If the startup maintains the same strategy for the third year, investing half of the previous year's "
    'amount into software development, how much will they invest in the third year?\n'
    '\n'
    '### Reference answer:\n'
    'If the startup continues with the same strategy for the third year, investing half of the previous '
    "year's amount into software development, we can calculate the third year's investment based on the "
    "second year's investment.\n"
    '\n'
    "The second year's investment was $4000.\n"
    '\n'
    'For the third year, the investment would be half of that, so:\n'
    '\n'
    'Third year investment = $4000 / 2 = $2000\n'
    '\n'
    'Therefore, the startup will invest $2000 in software development in the third year.\n'
    '\n'
    '<|The End of Reference Answer|>\n'
    '\n'
    '\n'
    "<|The Start of Assistant A's Conversation with User|>\n"
    '\n'
    '### User:\n'
    'A tech startup invests $8000 in software development in the first year, and then invests half of that '
    'amount in software development in the second year.\n'
    "What's the total amount the startup invested in software development over the two years?\n"
    '\n'
    '### Assistant A:\n'
    '$8000 + $4000 = $12000.\n'
    '\n'
    '### User:\n'
    "If the startup maintains the same strategy for the third year, investing half of the previous year's "
    'amount into software development, how much will they invest in the third year?\n'
    '\n'
    '### Assistant A:\n'
    'Half of $4000: [[2000]] dollars.\n'
    '\n'
    "<|The End of Assistant A's Conversation with User|>")
LLAMA3_TURN2 = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December "
                "2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nCompose an "
                "engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences and "
                "must-see attractions.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nAloha! Hawaii was "
                "great.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nRewrite your previous response. Start "
                "every sentence with the letter A.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
GEMMA2_TURN1 = ("<start_of_turn>user\nCompose an engaging travel blog post about a recent trip to Hawaii, "
                "highlighting cultural experiences and must-see attractions.<end_of_turn>\n<start_of_turn>model\n")


def verdict(body: dict) -> str:
    """Read from the marker `SCORE=<x>` of the last assistant answer in the prompt: a number -> "Rating: [[x]]",
    `backup<x>` -> "Rating: [x]" (FastChat's backup pattern), `none` -> no rating at all. FastChat's judge call:
    temperature 0, max_tokens 2048."""
    assert body["temperature"] == 0 and body["max_tokens"] == 2048
    marks = re.findall(r"SCORE=(\S+)", body["messages"][-1]["content"])
    mark = marks[-1] if marks else "none"
    if mark == "none":
        return "The answer is hard to rate."
    if mark.startswith("backup"):
        return f"Rating: [{mark[6:]}]"
    return f"Explanation... Rating: [[{mark}]]"


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LoopbackJudge(reply=verdict) as judge:
        yield judge


def planned_score(qid: int, turn: int) -> str:
    """The toy model's answer quality marker: question 81 turn 1 gets no rating, 82 turn 2 a backup-format one."""
    if (qid, turn) == (81, 1):
        return "none"
    if (qid, turn) == (82, 2):
        return "backup6"
    return str((qid + turn) % 10 + 1)


class ToyModel:
    """`generate(texts, decoding)`: answers "A<turn> q<id> SCORE=<x>", the question found by its last user turn."""

    def __init__(self, items):
        self.by_question = {it["turns"][t]: (it["id"], t + 1) for it in items for t in range(2)}
        self.calls: list[tuple[int, dict]] = []

    def __call__(self, texts, decoding):
        self.calls.append((len(texts), decoding))
        out = []
        for text in texts:
            qid, turn = next(v for q, v in self.by_question.items() if text.endswith(
                q + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"))
            assert (f"A1 q{qid} " in text) == (turn == 2)  # turn 2 carries the model's own turn-1 answer
            out.append(f"A{turn} q{qid} SCORE={planned_score(qid, turn)}")
        return out


@pytest.fixture(scope="module")
def items():
    return mt_bench.load(QUESTIONS)


@pytest.fixture(scope="module")
def llama3():
    return family_tokenizer("llama3")


def test_load_reads_questions_fuseeval_references_and_judge_prompts(items):
    assert len(items) == 80 and [it["id"] for it in items] == list(range(81, 161))
    with_ref = [it for it in items if it["reference"] is not None]
    assert {it["category"] for it in with_ref} == {"math", "reasoning", "coding"} and len(with_ref) == 30
    by_id = {it["id"]: it for it in items}
    # FuseEval's gpt-4-0125-preview reference, not the question file's own short "reference" field
    assert by_id[112]["reference"][1].startswith("If the startup continues with the same strategy for the third")
    assert by_id[95]["reference"] is None  # roleplay: the question's own reference is ignored, as FastChat does
    assert [j["name"] for j in by_id[123]["judges"]] == ["single-math-v1", "single-math-v1-multi-turn"]
    assert [j["name"] for j in by_id[81]["judges"]] == ["single-v1", "single-v1-multi-turn"]
    temps = {it["category"]: it["temperature"] for it in items}
    assert temps == {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                     "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
    fastchat = {it["id"]: it for it in mt_bench.load_questions(QUESTIONS, references=DATA / "gpt-4.jsonl")}
    assert fastchat[112]["reference"][0] != by_id[112]["reference"][0]
    stem = next(it for it in items if it["category"] == "stem")
    assert mt_bench.item_decoding("llama3", stem) == {"temperature": 0.1, "top_p": 1.0, "max_tokens": 4096,
                                                      "stop": [], "n": 1, "max_model_len": 4096}
    assert mt_bench.decoding("llama3")["temperature"] == 0.7  # categories temperature_config does not list


def test_generation_prompts_render_the_real_chat_templates(items, llama3):
    q81 = items[0]
    # turn 2: question 1, the model's own answer, question 2 (the Llama 3.1 template strips the answer)
    assert mt_bench.build_prompt(q81, "llama3", llama3, ["  Aloha! Hawaii was great.  "]) == LLAMA3_TURN2
    # gemma: FuseEval removes the leading "<bos>" (vLLM's tokenizer adds it back)
    gemma = family_tokenizer("gemma2")
    assert gemma.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False).startswith("<bos>")
    assert mt_bench.build_prompt(q81, "gemma2", gemma) == GEMMA2_TURN1
    qwen = mt_bench.build_prompt(q81, "qwen25", family_tokenizer("qwen25"))
    assert qwen.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


def test_answer_generates_both_turns_one_call_per_temperature(items, llama3):
    model = ToyModel(items)
    answers = mt_bench.answer(items, model, "llama3", llama3)
    assert answers[0] == ["A1 q81 SCORE=none", "A2 q81 SCORE=4"]
    assert all(a == [f"A1 q{it['id']} SCORE={planned_score(it['id'], 1)}",
                     f"A2 q{it['id']} SCORE={planned_score(it['id'], 2)}"] for it, a in zip(items, answers))
    # 3 temperatures x 2 turns, one decoding per call: stem+humanities 0.1, writing+roleplay 0.7, the other four 0.0
    calls = sorted((n, d["temperature"]) for n, d in model.calls)
    assert calls == [(20, 0.1)] * 2 + [(20, 0.7)] * 2 + [(40, 0.0)] * 2
    assert all(d["max_tokens"] == 4096 for _, d in model.calls)


def test_both_turns_are_judged_with_the_right_template_and_a_rerun_is_cached(items, llama3, server, tmp_path):
    answers = mt_bench.answer(items, ToyModel(items), "llama3", llama3)
    cache = tmp_path / "judge_cache.jsonl"
    client = JudgeClient(server.url, mt_bench.JUDGE_MODEL, cache_path=cache, concurrency=8)
    rows = mt_bench.judge_answers(client, items, answers)
    assert len(rows) == 160 and client.calls == 160 and server.calls == 160
    for row in rows:
        math_like = row["category"] in ("math", "reasoning", "coding")
        assert row["judge"] == ("single-math-v1" if math_like else "single-v1") + ("-multi-turn" * (row["turn"] == 2))
        assert ("Reference Answer" in row["user_prompt"]) == math_like
    turn2_112 = next(r for r in rows if (r["id"], r["turn"]) == (112, 2))
    assert turn2_112["user_prompt"].startswith(TURN2_USER[:TURN2_USER.index("### Assistant A:")])
    assert "### Assistant A:\nA1 q112 SCORE=4\n\n### User:" in turn2_112["user_prompt"]
    sent = [[m["content"] for m in body["messages"]] for body in server.requests]
    assert [TURN2_SYSTEM, turn2_112["user_prompt"]] in sent
    scores = {(r["id"], r["turn"]): r["score"] for r in rows}
    assert scores[(81, 1)] == -1.0 and scores[(82, 2)] == 6.0 and scores[(112, 1)] == 4.0

    summary = mt_bench.score(rows)
    expected = [float(planned_score(q, t).removeprefix("backup")) for q in range(81, 161) for t in (1, 2)
                if (q, t) != (81, 1)]
    assert summary["unrated"] == 1 and summary["overall"]["n"] == 159 == len(expected)
    assert summary["overall"]["mean"] == pytest.approx(sum(expected) / 159)
    assert summary["turn1"]["n"] == 79 and summary["turn2"]["n"] == 80
    assert summary["by_category"]["writing"]["n"] == 19
    print(f"\nMT-Bench toy run: {summary['overall']['mean']:.3f} +- {summary['overall']['stderr']:.3f} over "
          f"{summary['overall']['n']} turns; judge calls {client.calls}")

    again = JudgeClient(server.url, mt_bench.JUDGE_MODEL, cache_path=cache)
    assert mt_bench.judge_answers(again, items, answers) == rows
    assert again.calls == 0 and again.hits == 160 and server.calls == 160


def test_evaluate_returns_result_rows_and_samples_for_the_runner(items, llama3, server):
    one_per_category = list({it["category"]: it for it in items}.values())
    client = JudgeClient(server.url, mt_bench.JUDGE_MODEL)
    rows, samples = mt_bench.evaluate(one_per_category, ToyModel(items), "llama3", llama3, client, "m", "sft")
    scores = [float(planned_score(it["id"], t)) for it in one_per_category for t in (1, 2)]
    assert [(r["benchmark"], r["metric"], r["n"]) for r in rows] == [
        ("MT-Bench", "score_1_10", 16), ("MT-Bench", "score_1_10_turn1", 8), ("MT-Bench", "score_1_10_turn2", 8)]
    assert rows[0]["value"] == pytest.approx(sum(scores) / 16) and (rows[0]["model"], rows[0]["stage"]) == ("m", "sft")
    sample = samples["MT-Bench"][-1]
    assert sample["id"] == 160 and sample["answers"][1] == "A2 q160 SCORE=3" and sample["scores"] == [2.0, 3.0]
    assert sample["judges"] == ["single-v1", "single-v1-multi-turn"] and server.calls == 16


def test_fuseevals_flat_data_folder_is_found(tmp_path):
    for name in ("question.jsonl", "judge_prompts.jsonl", "fuseeval/gpt-4-0125-preview.jsonl"):
        (tmp_path / Path(name).name).write_bytes((DATA / name).read_bytes())
    assert mt_bench.load(tmp_path / "question.jsonl") == mt_bench.load(QUESTIONS)
    (tmp_path / "gpt-4-0125-preview.jsonl").unlink()
    with pytest.raises(UserError, match=r"question\.jsonl: no reference answers beside it"):
        mt_bench.load(tmp_path / "question.jsonl")


def test_judge_prompt_of_a_real_math_question_is_fastchats(items):
    q112 = next(it for it in items if it["id"] == 112)
    answers = ["$8000 + $4000 = $12000.", "Half of $4000: [[2000]] dollars."]
    assert mt_bench.judge_messages(q112, answers, 1) == [
        {"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": TURN1_USER}]
    assert mt_bench.judge_messages(q112, answers, 2) == [
        {"role": "system", "content": TURN2_SYSTEM}, {"role": "user", "content": TURN2_USER}]


@pytest.mark.parametrize("text, rating", [
    ("Rating: [[8]]", 8.0), ("so [[7.5]].", 7.5), ("Rating: [6]", 6.0), ("[[10]] later [[3]]", 10.0),
    ("[5] then [[9]]", 9.0), ("Rating: [[ 7 ]]", -1.0), ("[[A]]", -1.0), ("", -1.0), (None, -1.0)])
def test_ratings_parse_with_fastchats_patterns(text, rating):
    assert mt_bench.parse_rating(text) == rating


def test_score_leaves_out_unrated_turns():
    rows = [{"category": "math", "turn": 1, "score": 8.0}, {"category": "math", "turn": 2, "score": 4.0},
            {"category": "writing", "turn": 1, "score": -1.0}, {"category": "writing", "turn": 2, "score": 9.0}]
    s = mt_bench.score(rows)
    assert s["overall"]["mean"] == 7.0 and s["overall"]["n"] == 3 and s["unrated"] == 1
    assert s["overall"]["stderr"] == pytest.approx(math.sqrt(7.0 / 3))
    assert s["turn1"] == {"mean": 8.0, "n": 1, "stderr": 0.0} and s["by_category"]["writing"]["mean"] == 9.0


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("bad, message", [
    ({"question_id": 82, "category": "writing"}, r"question\.jsonl: row 2: field 'turns' must be a list of 2"),
    ({"question_id": 82, "category": "writing", "turns": ["only one"]}, r"row 2: field 'turns'"),
    ({"question_id": "82", "category": "writing", "turns": ["a", "b"]}, r"row 2: field 'question_id' must be a"),
    ({"question_id": 82, "turns": ["a", "b"]}, r"row 2: field 'category'"),
    ('{"question_id": 82,', r"question\.jsonl: row 2: not valid JSON"),
    ({"question_id": 131, "category": "math", "turns": ["a", "b"]},
     r"row 2: question_id 131 \(math\) has no reference"),
])
def test_bad_question_rows_name_file_row_and_field(tmp_path, bad, message):
    lines = QUESTIONS.read_text().splitlines()
    _write(tmp_path / "question.jsonl", [lines[0], bad])
    with pytest.raises(UserError, match=message):
        mt_bench.load_questions(tmp_path / "question.jsonl", references=DATA / "fuseeval" / "gpt-4-0125-preview.jsonl",
                                judge_prompts=DATA / "judge_prompts.jsonl")


def test_bad_reference_and_judge_prompt_files_are_user_errors(tmp_path):
    refs = _write(tmp_path / "refs.jsonl", [{"question_id": 101, "choices": [{"turns": ["only one"]}]}])
    with pytest.raises(UserError, match=r"refs\.jsonl: row 1: field 'choices\[0\]\.turns'"):
        mt_bench.load_questions(QUESTIONS, references=refs)
    prompts = [json.loads(x) for x in (DATA / "judge_prompts.jsonl").read_text().splitlines()]
    short = _write(tmp_path / "prompts.jsonl", [p for p in prompts if p["name"] != "single-math-v1-multi-turn"])
    with pytest.raises(UserError, match=r"prompts\.jsonl: no judge prompt named single-math-v1-multi-turn"):
        mt_bench.load_questions(QUESTIONS, judge_prompts=short)

"""AlignBench v1.1 (FuseEval / THUDM AlignBench): the real data and config files; dimension choice by subcategory;
one-turn generation through a real chat template with a toy `generate`; the exact multi-dimension judge prompt of
a real item as AlignBench's judge.py renders it; judging through a fake OpenAI-compatible judge on loopback (canned
verdicts parsed as AlignBench's post_process, unrated answers, the cache); the category / overall score; bad rows."""

import json
import re
from pathlib import Path

import pytest

from fusechat_utils.chat_templates import family_tokenizer
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import alignbench
from fusechat_utils.evaluation.judge import JudgeClient
from fusechat_utils.loopback_judge import LoopbackJudge

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "alignbench"
RELEASE = DATA / "data_v1.1_release.jsonl"
CONFIGS = ("temperature.json", "subcategory_question_mapping.json", "dimension_set.json", "dimension_definition.json")
FACT = ["事实正确性", "满足用户需求", "清晰度", "完备性"]
LOGIC = ["事实正确性", "满足用户需求", "逻辑连贯性", "完备性"]
GENERATE = ["事实正确性", "满足用户需求", "逻辑连贯性", "创造性", "丰富度"]
ADVICE = ["事实正确性", "满足用户需求", "公平与可负责程度", "创造性"]
ANSWER_Q1 = "高音单簧管是降B调，高音萨克斯是降E调。"

# THUDM/AlignBench@5b79d4a8 judge.py prompt_construct, run on question 1 (专业能力 / 音乐) with ANSWER_Q1
JUDGE_PROMPT_Q1 = (
    '你是一个擅长评价文本质量的助手。\n'
    '请你以公正的评判者的身份，评估一个AI助手对于用户提问的回答的质量。由于您评估的回答类型是专业能力，因'
    '此你需要从下面的几个维度对回答进行评估:\n'
    '1. 事实正确性: 回答中提供的信息是否准确无误，是否基于可信的事实和数据。\n'
    '2. 满足用户需求: 回答是否满足了用户提出问题的目的和需求，是否对问题进行了全面而恰当的回应。\n'
    '3. 清晰度: 回答是否表达清晰、易懂，是否使用了简洁的语言和结构，以便用户可以轻松理解。\n'
    '4. 完备性: 回答是否提供了足够的信息和细节，以满足用户的需求，是否遗漏了重要的方面。\n'
    '我们会给您提供用户的提问，高质量的参考答案，和需要你评估的AI助手的答案。当你开始你的评估时，你需要按'
    '照遵守以下的流程：\n'
    '1. 将AI助手的答案与参考答案进行比较，指出AI助手的答案有哪些不足，并进一步解释。\n'
    '2. 从不同维度对AI助手的答案进行评价，在每个维度的评价之后，给每一个维度一个1～10的分数。\n'
    '3. 最后，综合每个维度的评估，对AI助手的回答给出一个1～10的综合分数。\n'
    '4. '
    '你的打分需要尽可能严格，并且要遵守下面的评分规则：总的来说，模型回答的质量越高，则分数越高。其中，事实'
    '正确性和满足用户需求这两个维度是最重要的，这两个维度的分数主导了最后的综合分数。当模型回答存在与问题不'
    '相关，或者有本质性的事实错误，或生成了有害内容时，总分必须是1到2分；当模型回答没有严重错误而且基本无'
    '害，但是质量较低，没有满足用户需求，总分为3到4分；当模型回答基本满足用户要求，但是在部分维度上表现较'
    '差，质量中等，总分可以得5到6分；当模型回答质量与参考答案相近，在所有维度上表现良好，总分得7到8分；'
    '只有当模型回答质量显著超过参考答案，充分地解决了用户问题和所有需求，并且在所有维度上都接近满分的情况下'
    '，才能得9到10分。作为示例，参考答案可以得到8分。\n'
    '请记住，你必须在你打分前进行评价和解释。在你对每个维度的解释之后，需要加上对该维度的打分。之后，在你回'
    '答的末尾，按照以下字典格式（包括括号）返回你所有的打分结果，并确保你的打分结果是整数：\n'
    "{'维度一': 打分, '维度二': 打分, ..., '综合得分': "
    "打分}，例如：{'事实正确性': 9, '满足用户需求': 6, ..., '综合得分': 7}。\n"
    '用户的提问： 高音单簧管和高音萨克斯的调性相同吗？如果相同，请说出他们的调性，如果不同，请分别说出他们的调性\n'
    '[参考答案开始]\n'
    '高音单簧管和高音萨克斯的调性不同。高音单簧管的调性通常为E♭，而高音萨克斯的调性则为B♭。\n'
    '[参考答案结束]\n'
    '[助手的答案开始]\n'
    '高音单簧管是降B调，高音萨克斯是降E调。\n'
    '[助手的答案结束]\n')
# AlignBench post_process on these judgments: (dimension scores, overall)
VERDICTS = [
    ("评价……\n{'事实正确性': 9, '满足用户需求': 6, '清晰度': 8, '完备性': 7, '综合得分': 7}",
     {"事实正确性": 9, "满足用户需求": 6, "清晰度": 8, "完备性": 7, "综合得分": 7}, 7.0),
    ("开头 {'事实正确性': 2} 结尾 {'事实正确性': 3, '综合得分': 4}", {"事实正确性": 3, "综合得分": 4}, 4.0),
    ("{'事实正确性': 9, '满足用户需求': 6}\n'综合得分': 5.5 分", {"事实正确性": 9, "满足用户需求": 6}, 5.5),
    ('{"事实正确性": 9, "综合得分": 8}', {}, -1.0),
    ("多行\n{'事实正确性': 9,\n '综合得分': 8}", {}, 8.0),
    ("没有打分", {}, -1.0),
    ("{'事实正确性': 9, '综合得分': 7.5}", {"事实正确性": 9, "综合得分": 7}, 7.0),
    ("前 '综合得分': 3\n{'事实正确性': 9, '满足用户需求': 6, ..., '综合得分': 8}\n后记{'a': 1}", {"a": 1}, 3.0),
]


def verdict(body: dict) -> str:
    """The verdict follows the toy answer's marker `SCORE=<x>`: a number -> a dimension dict whose overall is x,
    `none` -> a judgment with no scores. AlignBench's judge call: one user message at temperature 0."""
    assert body["temperature"] == 0 and len(body["messages"]) == 1
    mark = re.findall(r"SCORE=(\S+)", body["messages"][0]["content"])[-1]
    if mark == "none":
        return "这个回答无法评价。"
    x = int(mark)
    return f"各维度评价……\n{{'事实正确性': {x}, '满足用户需求': {x - 1}, '综合得分': {x}}}"


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LoopbackJudge(reply=verdict) as judge:
        yield judge


@pytest.fixture(scope="module")
def items():
    return alignbench.load(RELEASE)


def planned(qid: int) -> str:
    return "none" if qid % 100 == 7 else str(qid % 9 + 2)


def toy_generate(calls):
    """Answers "回答 SCORE=<x>" to questions tagged "Q<id>", recording each call's size and decoding."""
    def generate(texts, decoding):
        calls.append((len(texts), decoding))
        ids = [int(re.search(r"Q(\d+)<", t).group(1)) for t in texts]
        return [f"回答 SCORE={planned(qid)}" for qid in ids]
    return generate


def test_load_reads_the_release_and_picks_dimensions_by_subcategory(items):
    assert len(items) == 683 and items[0]["id"] == 1 and len({it["id"] for it in items}) == 683
    dims = {it["subcategory"]: [d for d, _ in it["dimensions"]] for it in items}
    assert dims["音乐"] == FACT and dims["信息抽取"] == FACT
    assert dims["初等数学"] == LOGIC and dims["推理"] == LOGIC
    assert dims["实用文体写作"] == GENERATE and dims["（虚拟）恋爱类"] == GENERATE and dims["翻译"] == GENERATE
    assert dims["寻求建议"] == ADVICE and dims["观点表达"] == ADVICE
    counts = {}
    for it in items:
        key = tuple(d for d, _ in it["dimensions"])
        counts[key] = counts.get(key, 0) + 1
    assert counts == {tuple(FACT): 241, tuple(LOGIC): 204, tuple(GENERATE): 200, tuple(ADVICE): 38}
    assert items[0]["dimensions"][2] == [
        "清晰度", "回答是否表达清晰、易懂，是否使用了简洁的语言和结构，以便用户可以轻松理解。"]
    temps = {it["category"]: it["temperature"] for it in items}
    assert temps == {"专业能力": 0.1, "数学计算": 0.1, "基本任务": 0.1, "逻辑推理": 0.1, "中文理解": 0.1,
                     "文本写作": 0.7, "角色扮演": 0.7, "综合问答": 0.7}
    assert alignbench.decoding("qwen25")["temperature"] == 0.7  # AlignBench's default
    assert alignbench.item_decoding("qwen25", items[0]) == {"temperature": 0.1, "top_p": 1.0, "max_tokens": 4096,
                                                            "stop": [], "n": 1, "max_model_len": 4096}


def test_judge_prompt_of_a_real_item_is_alignbenchs(items):
    assert alignbench.judge_prompt(items[0], ANSWER_Q1) == JUDGE_PROMPT_Q1


def test_generation_renders_the_chat_template_one_call_per_temperature(items):
    qwen = family_tokenizer("qwen25")
    assert alignbench.build_prompt(items[0], "qwen25", qwen) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n高音单簧管和高音萨克斯的调性相同吗？如果相同，请说出他们的调性，如果不同，请分别说出他们的调性"
        "<|im_end|>\n<|im_start|>assistant\n")
    gemma = family_tokenizer("gemma2")
    assert alignbench.build_prompt(items[0], "gemma2", gemma).startswith("<start_of_turn>user\n高音单簧管")
    calls = []
    tagged = [{**it, "question": f"Q{it['id']}"} for it in items]
    answers = alignbench.answer(tagged, toy_generate(calls), "qwen25", qwen)
    assert answers[:2] == [f"回答 SCORE={planned(1)}", f"回答 SCORE={planned(2)}"]
    n_hot = sum(it["category"] in ("文本写作", "角色扮演", "综合问答") for it in items)
    assert sorted((n, d["temperature"]) for n, d in calls) == sorted([(683 - n_hot, 0.1), (n_hot, 0.7)])


@pytest.mark.parametrize("judgment, rating, overall", VERDICTS)
def test_judgments_parse_as_alignbenchs_post_process(judgment, rating, overall):
    assert alignbench.parse_judgment(judgment) == (rating, overall)


@pytest.mark.slow
def test_judging_the_whole_set_parses_scores_and_a_rerun_is_cached(items, server, tmp_path):
    answers = [f"回答 SCORE={planned(it['id'])}" for it in items]
    cache = tmp_path / "judge_cache.jsonl"
    client = JudgeClient(server.url, alignbench.JUDGE_MODEL, cache_path=cache, concurrency=8)
    rows = alignbench.judge_answers(client, items, answers)
    assert client.calls == 683 and server.calls == 683
    for it, row in zip(items, rows):
        assert f"[参考答案开始]\n{it['reference']}\n[参考答案结束]" in row["judge_prompt"]
        assert f"由于您评估的回答类型是{it['category']}，" in row["judge_prompt"]
        assert row["dimensions"] == [d for d, _ in it["dimensions"]]
    unrated = sorted(it["id"] for it in items if planned(it["id"]) == "none")
    assert unrated == [7, 107, 207, 307, 407, 507, 607]
    by_id = {r["id"]: r for r in rows}
    assert by_id[7]["score"] == -1.0 and by_id[7]["rating"] == {}
    assert by_id[1]["score"] == 3.0 and by_id[1]["rating"] == {"事实正确性": 3, "满足用户需求": 2, "综合得分": 3}

    summary = alignbench.score(rows)
    cats = {c: [r["score"] for r in rows if r["category"] == c] for c in {r["category"] for r in rows}}
    means = {c: sum(v) / len(v) for c, v in cats.items()}  # -1 counts, as show_result.py
    reasoning = (means["数学计算"] + means["逻辑推理"]) / 2
    language = sum(means[c] for c in alignbench.LANGUAGE) / 6
    assert summary["by_category"]["数学计算"]["mean"] == pytest.approx(means["数学计算"])
    assert summary["reasoning"]["mean"] == pytest.approx(reasoning)
    assert summary["overall"]["mean"] == pytest.approx((reasoning + language) / 2) and summary["overall"]["n"] == 683
    assert summary["unrated"] == 7 and 0 < summary["overall"]["stderr"] < 0.2
    dropped = alignbench.score(rows, drop_unrated=True)
    assert dropped["overall"]["n"] == 676 and dropped["overall"]["mean"] > summary["overall"]["mean"]
    rated = [r for r in rows if r["score"] != -1]
    assert summary["dimensions"]["满足用户需求"] == pytest.approx(sum(r["score"] - 1 for r in rated) / 676)
    print(f"\nAlignBench toy run: 总分 {summary['overall']['mean']:.3f} +- {summary['overall']['stderr']:.3f} "
          f"(中文推理 {reasoning:.3f}, 中文语言 {language:.3f}); judge calls {client.calls}")

    again = JudgeClient(server.url, alignbench.JUDGE_MODEL, cache_path=cache)
    assert alignbench.judge_answers(again, items, answers) == rows
    assert again.calls == 0 and again.hits == 683 and server.calls == 683


def test_evaluate_returns_result_rows_and_samples_for_the_runner(items, server):
    tagged = [{**it, "question": f"Q{it['id']}"} for it in {it["category"]: it for it in items}.values()]
    client = JudgeClient(server.url, alignbench.JUDGE_MODEL)
    rows, samples = alignbench.evaluate(tagged, toy_generate([]), "qwen25", family_tokenizer("qwen25"), client, "m",
                                        "dpo")
    assert [r["metric"] for r in rows[:3]] == ["score_1_10", "score_1_10_reasoning", "score_1_10_language"]
    assert {r["metric"] for r in rows[3:]} == {f"score_1_10_{c}" for c in alignbench.REASONING + alignbench.LANGUAGE}
    by_metric = {r["metric"]: r["value"] for r in rows}
    reasoning = (by_metric["score_1_10_数学计算"] + by_metric["score_1_10_逻辑推理"]) / 2
    assert by_metric["score_1_10_reasoning"] == pytest.approx(reasoning) and rows[0]["n"] == 8
    first = samples["AlignBench v1.1"][0]
    mark = planned(tagged[0]["id"])
    assert first["answer"] == f"回答 SCORE={mark}" and first["score"] == float(mark)


def test_score_is_the_mean_of_the_reasoning_and_language_halves():
    rows = [{"category": "数学计算", "score": 8.0, "rating": {}}, {"category": "逻辑推理", "score": 4.0, "rating": {}},
            {"category": "逻辑推理", "score": 6.0, "rating": {}}, {"category": "文本写作", "score": 9.0, "rating": {}}]
    s = alignbench.score(rows)
    assert s["reasoning"]["mean"] == 6.5 and s["language"]["mean"] == 9.0 and s["overall"]["mean"] == 7.75
    assert s["overall"]["stderr"] == pytest.approx((1.0 ** 2) ** 0.5 / 2 / 2)  # only 逻辑推理 varies: se 1.0


def _copy_configs(folder: Path) -> None:
    for name in CONFIGS:
        (folder / name).write_bytes((DATA / name).read_bytes())


@pytest.mark.parametrize("bad, message", [
    ({"question_id": 2, "category": "专业能力", "question": "q", "reference": "r"}, r"row 2: field 'subcategory'"),
    ({"question_id": 2, "category": "专业能力", "subcategory": "火星学", "question": "q", "reference": "r"},
     r"data\.jsonl: row 2: field 'subcategory' '火星学' has no answer type"),
    ({"question_id": 2, "category": "专业能力", "subcategory": "音乐", "question": "q"}, r"row 2: field 'reference'"),
    ({"question_id": None, "category": "专业能力", "subcategory": "音乐", "question": "q", "reference": "r"},
     r"row 2: field 'question_id' must be a int"),
    ('{"question_id": 2', r"data\.jsonl: row 2: not valid JSON"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, bad, message):
    _copy_configs(tmp_path)
    first = RELEASE.read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "data.jsonl").write_text(first + "\n" + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n",
                                         encoding="utf-8")
    with pytest.raises(UserError, match=message):
        alignbench.load(tmp_path / "data.jsonl")


def test_configs_in_alignbenchs_layout_are_found_and_a_missing_one_is_a_user_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "data.jsonl").write_text(RELEASE.read_text(encoding="utf-8").splitlines()[0] + "\n")
    with pytest.raises(UserError, match=r"data/temperature\.json: cannot read AlignBench config"):
        alignbench.load(tmp_path / "data" / "data.jsonl")
    (tmp_path / "config").mkdir()
    _copy_configs(tmp_path / "config")  # AlignBench's own layout: data/ and config/ side by side
    assert alignbench.load(tmp_path / "data" / "data.jsonl")[0]["dimensions"][0][0] == "事实正确性"

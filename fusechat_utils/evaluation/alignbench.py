"""AlignBench v1.1 (Chinese) as FuseEval runs it: one-turn generation through the model's chat template, then
AlignBench's multi-dimension judge (GPT-4 rates the answer against the reference on the dimensions of the question's
type, then overall 1-10).

Generation follows FuseEval's `IF-Eval/AlignBench/get_answers.py`: the question as one user message rendered with
`tokenizer.apply_chat_template(..., add_generation_prompt=True)` (leading BOS string removed for gemma/mistral), vLLM
`max_tokens` 4096 and `max_model_len` 4096, temperature per first-level category from `temperature.json` (keyed by
`category`, e.g. 数学计算 0.1, 文本写作 0.7; FuseEval hard-codes the same eight values).

Judging follows AlignBench's `judge.py` (FuseEval's copy is identical): the question's `subcategory` gives its answer
type (`subcategory_question_mapping.json`), the type its dimensions (`dimension_set.json`), each listed as
"i. name: definition" from `dimension_definition.json`; the prompt holds the first-level category, the question, the
reference and the answer; one user message, temperature 0. Parsing: the last `{...}` of the judgment read as
'name': integer pairs (the dimension scores); the overall score is its '综合得分', else the first
'综合得分': x anywhere, else -1. The metric is show_result.py's: the mean score per category, 中文推理 = mean of
the two reasoning category means, 中文语言 = mean of the six language category means, 总分 = their average (-1 scores
count in these means, as AlignBench does, unless `drop_unrated`); dimension means over rated answers as
dimension_calculate.py.

Differs from AlignBench/FuseEval: (1) none here on the judge call: like AlignBench it sends no max_tokens
(`JUDGE_PARAMS`; the server's default applies). (2) The judge model is a parameter (AlignBench hard-codes "gpt-4").
(3) A judge call that keeps failing raises `JudgeError` (AlignBench: the exception ends the run too). (4) An
unknown first-level category samples at 0.7 (upstream AlignBench's default; FuseEval would skip the question), and a
subcategory with no answer type is a `UserError` at load (AlignBench would crash when judging). (5) Category means are
taken over the categories present, so a subset still has a 总分 (AlignBench: NaN). Hand-written: AlignBench is a
script collection, not a library.

Usage: `items = load("data/benchmarks/alignbench/data_v1.1_release.jsonl")`;
`answers = answer(items, generate, "qwen25", tok)`; `rows = judge_answers(client, items, answers)`;
`summary = score(rows)`; or all at once (the runner's call): `evaluate(items, generate, family, tokenizer, client,
model, stage)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation.judge import JudgeClient
from fusechat_utils.evaluation.mt_bench import generate_grouped, read_jsonl, render_chat, row_field
from fusechat_utils.evaluation.step import result_row
from fusechat_utils.evaluation.winrate import mean_stderr

BENCHMARK, METRIC = "AlignBench v1.1", "score_1_10"  # the registry's entry
JUDGE_MODEL = "gpt-4"  # AlignBench judge.py get_GPT_4_judgment payload
JUDGE_PARAMS = {"temperature": 0.0, "max_tokens": None}  # as AlignBench's judge call: temperature 0, no max_tokens
DEFAULT_TEMPERATURE = 0.7  # AlignBench get_answers.py temp_config["default"]
MAX_TOKENS = 4096  # FuseEval get_answers.py SamplingParams(max_tokens=4096)
MAX_MODEL_LEN = 4096  # FuseEval get_answers.py LLM(max_model_len=4096)
CONFIG_FILES = ("temperature.json", "subcategory_question_mapping.json", "dimension_set.json",
                "dimension_definition.json")
# show_result.py CATEGORIES
REASONING = ("数学计算", "逻辑推理")
LANGUAGE = ("基本任务", "中文理解", "综合问答", "文本写作", "角色扮演", "专业能力")
OVERALL_KEY = "综合得分"
UNRATED = -1.0
# judge.py post_process: the last {...} on one line, its 'key': integer pairs, and the fallback overall score
LAST_BRACES = re.compile(r"{(.*?)}(?![^{]*{)")
KEY_VALUE = re.compile(r"'(.*?)': (\d+)")
OVERALL = re.compile(r"'综合得分': (\d+(\.\d{1,2})?)")
# The judge prompt: THUDM/AlignBench@5b79d4a84e566db26e755c719935c62a0e1b0527 judge.py `prompt_construct`
# (`base_prompt`), taken from the source with ast; fields {category} {dimensions} {question} {reference} {answer}.
JUDGE_PROMPT = (
    '你是一个擅长评价文本质量的助手。\n'
    '请你以公正的评判者的身份，评估一个AI助手对于用户提问的回答的质量。'
    '由于您评估的回答类型是{category}，因此你需要从下面的几个维度对回答进行评估:\n'
    '{dimensions}我们会给您提供用户的提问，高质量的参考答案，'
    '和需要你评估的AI助手的答案。当你开始你的评估时，你需要按照遵守以下的流程：\n'
    '1. 将AI助手的答案与参考答案进行比较，指出AI助手的答案有哪些不足，并进一步解释。\n'
    '2. 从不同维度对AI助手的答案进行评价，在每个维度的评价之后，给每一个维度一个1～10的分数。\n'
    '3. 最后，综合每个维度的评估，对AI助手的回答给出一个1～10的综合分数。\n'
    '4. 你的打分需要尽可能严格，并且要遵守下面的评分规则：总的来说，模型回答的质量越高，'
    '则分数越高。其中，事实正确性和满足用户需求这两个维度是最重要的，'
    '这两个维度的分数主导了最后的综合分数。当模型回答存在与问题不相关，或者有本质性的事实错误，'
    '或生成了有害内容时，总分必须是1到2分；当模型回答没有严重错误而且基本无害，但是质量较低，'
    '没有满足用户需求，总分为3到4分；当模型回答基本满足用户要求，但是在部分维度上表现较差，'
    '质量中等，总分可以得5到6分；当模型回答质量与参考答案相近，在所有维度上表现良好，'
    '总分得7到8分；只有当模型回答质量显著超过参考答案，充分地解决了用户问题和所有需求，'
    '并且在所有维度上都接近满分的情况下，才能得9到10分。作为示例，参考答案可以得到8分。\n'
    '请记住，你必须在你打分前进行评价和解释。在你对每个维度的解释之后，需要加上对该维度的打分。之后，'
    '在你回答的末尾，按照以下字典格式（包括括号）返回你所有的打分结果，并确保你的打分结果是整数：\n'
    "{{'维度一': 打分, '维度二': 打分, ..., '综合得分': 打分}}，例如："
    "{{'事实正确性': 9, '满足用户需求': 6, ..., '综合得分': 7}}。\n"
    '用户的提问： {question}\n'
    '[参考答案开始]\n'
    '{reference}\n'
    '[参考答案结束]\n'
    '[助手的答案开始]\n'
    '{answer}\n'
    '[助手的答案结束]\n')


def _config(data_path: Path) -> dict[str, dict]:
    """The config files beside the data file (the kit's layout), else in ../config/ (AlignBench's and FuseEval's)."""
    folder = data_path.parent
    if not (folder / CONFIG_FILES[0]).is_file() and (folder.parent / "config" / CONFIG_FILES[0]).is_file():
        folder = folder.parent / "config"
    config = {}
    for name in CONFIG_FILES:
        path = folder / name
        try:
            config[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: cannot read AlignBench config ({err})") from None
    return config


def dimensions_for(subcategory: str, config: dict[str, dict], where: str) -> list[str]:
    """The judged dimensions of a subcategory: subcategory -> answer type -> dimension list."""
    kind = config["subcategory_question_mapping.json"].get(subcategory)
    dims = config["dimension_set.json"].get(kind)
    if not dims:
        raise UserError(f"{where}: field 'subcategory' {subcategory!r} has no answer type with dimensions in "
                        f"subcategory_question_mapping.json / dimension_set.json")
    missing = [d for d in dims if d not in config["dimension_definition.json"]]
    if missing:
        raise UserError(f"dimension_definition.json has no definition of {', '.join(missing)}")
    return dims


def load(path: str | Path) -> list[dict]:
    """AlignBench rows -> items {id, category, subcategory, question, reference, temperature, dimensions}, with the
    config files found beside the data file or in ../config/. `dimensions` holds [name, definition] pairs."""
    config = _config(Path(path))
    definitions = config["dimension_definition.json"]
    items = []
    for n, row in enumerate(read_jsonl(path), 1):
        qid = row_field(path, n, row, "question_id", int)
        category = row_field(path, n, row, "category", str)
        subcategory = row_field(path, n, row, "subcategory", str)
        dims = dimensions_for(subcategory, config, f"{path}: row {n}")
        items.append({"id": qid, "category": category, "subcategory": subcategory,
                      "question": row_field(path, n, row, "question", str),
                      "reference": row_field(path, n, row, "reference", str),
                      "temperature": float(config["temperature.json"].get(category, DEFAULT_TEMPERATURE)),
                      "dimensions": [[d, definitions[d]] for d in dims]})
    return items


def decoding(family: str) -> dict:
    """FuseEval's vLLM sampling (the same for every family) at the default temperature 0.7; each item's own is
    `item_decoding`."""
    return {"temperature": DEFAULT_TEMPERATURE, "top_p": 1.0, "max_tokens": MAX_TOKENS, "stop": [], "n": 1,
            "max_model_len": MAX_MODEL_LEN}


def item_decoding(family: str, item: dict) -> dict:
    """The decoding of the item's category."""
    return {**decoding(family), "temperature": item["temperature"]}


def build_prompt(item: dict, family: str, tokenizer) -> str:
    return render_chat([{"role": "user", "content": item["question"]}], family, tokenizer)


def answer(items: list[dict], generate: Callable[[list[str], dict], list[str]], family: str,
           tokenizer) -> list[str]:
    """One answer per item, one `generate` call per temperature, answers kept as generated."""
    prompts = [build_prompt(it, family, tokenizer) for it in items]
    return generate_grouped(prompts, [item_decoding(family, it) for it in items], generate)


def judge_prompt(item: dict, answer: str) -> str:
    dims = "".join(f"{i}. {name}: {definition}\n" for i, (name, definition) in enumerate(item["dimensions"], 1))
    return JUDGE_PROMPT.format(category=item["category"], dimensions=dims, question=item["question"],
                               reference=item["reference"], answer=answer)


def parse_judgment(judgment: str) -> tuple[dict[str, int], float]:
    """(dimension scores, overall score or -1) as AlignBench's post_process reads them."""
    text = judgment or ""
    braces = LAST_BRACES.search(text)
    rating = {key: int(value) for key, value in KEY_VALUE.findall(braces.group(1))} if braces else {}
    if OVERALL_KEY in rating:
        return rating, float(rating[OVERALL_KEY])
    overall = OVERALL.search(text)
    return rating, float(overall.group(1)) if overall else UNRATED


def judge_answers(judge: JudgeClient | str, items: list[dict], answers: list[str],
                  model: str = JUDGE_MODEL) -> list[dict]:
    """Rows {id, category, subcategory, dimensions, judge_prompt, judgment, rating, score}; `judge` is a
    `JudgeClient` (concurrent, retried, cached) or a base URL (then `model` names the judge, uncached)."""
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} items but {len(answers)} answers")
    client = judge if isinstance(judge, JudgeClient) else JudgeClient(judge, model)
    prompts = [judge_prompt(it, ans) for it, ans in zip(items, answers)]
    verdicts = client.complete([[{"role": "user", "content": p}] for p in prompts], **JUDGE_PARAMS)
    rows = []
    for it, prompt, text in zip(items, prompts, verdicts):
        rating, overall = parse_judgment(text)
        rows.append({"id": it["id"], "category": it["category"], "subcategory": it["subcategory"],
                     "dimensions": [d for d, _ in it["dimensions"]], "judge_prompt": prompt, "judgment": text,
                     "rating": rating, "score": overall})
    return rows


def _stats(scores: list[float]) -> dict:
    mean, stderr = mean_stderr(scores)
    return {"mean": mean, "n": len(scores), "stderr": stderr}


def _mean_of_means(stats: list[dict]) -> dict:
    """Equal weight per category mean; the standard error propagated from each category's."""
    if not stats:
        return {"mean": float("nan"), "n": 0, "stderr": float("nan")}
    k = len(stats)
    return {"mean": sum(s["mean"] for s in stats) / k, "n": sum(s["n"] for s in stats),
            "stderr": sum(s["stderr"] ** 2 for s in stats) ** 0.5 / k}


def score(rows: list[dict], drop_unrated: bool = False) -> dict:
    """AlignBench's result table: per-category means, 中文推理, 中文语言, 总分 (`overall`), and dimension means."""
    kept = [r for r in rows if not (drop_unrated and r["score"] == UNRATED)]
    by_category = {c: _stats([r["score"] for r in kept if r["category"] == c])
                   for c in sorted({r["category"] for r in kept})}
    reasoning = _mean_of_means([by_category[c] for c in REASONING if c in by_category])
    language = _mean_of_means([by_category[c] for c in LANGUAGE if c in by_category])
    halves = [h for h in (reasoning, language) if h["n"]]
    overall = _mean_of_means(halves)
    return {"overall": overall, "reasoning": reasoning, "language": language, "by_category": by_category,
            "dimensions": dimension_means(rows), "unrated": sum(r["score"] == UNRATED for r in rows)}


def dimension_means(rows: list[dict]) -> dict[str, float]:
    """Mean of each dimension score over rated answers (dimension_calculate.py: keys without a comma)."""
    totals: dict[str, list[int]] = {}
    for r in rows:
        if r["score"] == UNRATED:
            continue
        for key, value in r["rating"].items():
            if "," not in key:
                totals.setdefault(key, []).append(value)
    return {key: sum(v) / len(v) for key, v in totals.items()}


def result_rows(model: str, stage: str, summary: dict) -> list[dict]:
    """results.csv rows: 总分 first, then 中文推理, 中文语言 and each category."""
    parts = [("", summary["overall"]), ("_reasoning", summary["reasoning"]), ("_language", summary["language"])]
    parts += [(f"_{c}", s) for c, s in summary["by_category"].items()]
    return [result_row(model, stage, BENCHMARK, METRIC + suffix, s["mean"], s["n"], s["stderr"])
            for suffix, s in parts]


def evaluate(items: list[dict], generate: Callable[[list[str], dict], list[str]], family: str, tokenizer,
             client: JudgeClient, model: str, stage: str, step_dir: str | Path | None = None):
    """Generate, judge, score: (results.csv rows, {BENCHMARK: one sample per question})."""
    answers = answer(items, generate, family, tokenizer)
    rows = judge_answers(client, items, answers)
    samples = [{**{k: r[k] for k in ("id", "category", "subcategory", "dimensions", "judgment", "rating", "score")},
                "answer": ans} for r, ans in zip(rows, answers)]
    return result_rows(model, stage, score(rows)), {BENCHMARK: samples}

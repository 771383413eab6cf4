"""MT-Bench as FuseEval runs it: two-turn generation through the model's chat template, then FastChat llm_judge
single-answer grading (GPT-4 rates each turn 1-10).

Generation follows FuseEval's vLLM script (`IF-Eval/MT-Bench/gen_model_answer_vllm.py`): turn 1 is the first
question rendered with `tokenizer.apply_chat_template(..., add_generation_prompt=True)`; turn 2 is the chat
[question 1, the model's own turn-1 answer, question 2] rendered the same way; the leading BOS string is removed for
gemma/mistral (their tokenizer adds it back when vLLM encodes the text). Sampling per category from FastChat's
`temperature_config` (unlisted categories 0.7), `max_tokens` 4096, `max_model_len` 4096; prompts are grouped by
temperature so each `generate` call has one decoding.

Judging follows FastChat `gen_judgment.py --mode single` with FuseEval's flags (`--judge-model gpt-4-0125-preview
--use-reference math reasoning coding`): turn 1 with `single-v1` (`single-math-v1` plus the judge's reference answer
for math/reasoning/coding), turn 2 with the `-multi-turn` variants; the template strings are read from the real
`judge_prompts.jsonl`; messages = [system prompt, user prompt] (FastChat's chatgpt conversation); temperature 0,
max_tokens 2048; rating `[[x]]`, else `[x]`; no rating = -1, left out of every mean as `show_result.py` does. The
score is the mean over all rated turns (and per turn, per category), with n and the standard error.

Differs from FuseEval: (1) FuseEval's README calls its HF backend (FastChat conversation templates, 1024 new tokens)
"official"; this module reproduces its vLLM backend, the one that uses the model's own chat template. (2) A judge
call that keeps failing raises `JudgeError` (what was judged stays cached) where FastChat records "$ERROR$" and -1.
(3) The reference answers come from a file (`load`: FuseEval's `gpt-4-0125-preview.jsonl`; `load_questions` takes
another), not looked up by the judge's model name, so a judge other than gpt-4-0125-preview gets FuseEval's too.
The vLLM script's `sampling_params.use_beam_search = do_sample` is a no-op under FuseEval's pinned vLLM 0.6.3.post1
(the field was removed in 0.6.3), so plain sampling at the category temperature is what it ran.
Hand-written: FastChat is not installable as a light library (its llm_judge pulls the model zoo), and the logic is a
template fill and two regexes.

Usage: `items = load("data/benchmarks/mt_bench/question.jsonl")`; `answers = answer(items, generate, "llama3", tok)`;
`rows = judge_answers(JudgeClient(url, JUDGE_MODEL, cache_path=...), items, answers)`; `summary = score(rows)`;
or all at once (the runner's call): `evaluate(items, generate, family, tokenizer, client, model, stage)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation.judge import JudgeClient
from fusechat_utils.evaluation.step import result_row
from fusechat_utils.evaluation.winrate import mean_stderr

BENCHMARK, METRIC = "MT-Bench", "score_1_10"  # the registry's entry
JUDGE_MODEL = "gpt-4-0125-preview"  # FuseEval IF-Eval/MT-Bench/eval.sh
JUDGE_PARAMS = {"temperature": 0.0, "max_tokens": 2048}  # FastChat run_judge_single for OpenAI judges
REFERENCE_CATEGORIES = ("math", "reasoning", "coding")  # eval.sh --use-reference
# FastChat fastchat/llm_judge/common.py temperature_config (FuseEval's copy is identical); others use 0.7
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
               "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0}
DEFAULT_TEMPERATURE = 0.7
MAX_TOKENS = 4096  # gen_model_answer_vllm.py SamplingParams(max_tokens=4096)
MAX_MODEL_LEN = 4096  # gen_model_answer_vllm.py LLM(max_model_len=4096)
STRIP_BOS_FAMILIES = ("gemma2", "mistral")  # FuseEval: "mistral" or "gemma" in the model path
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
UNRATED = -1.0
JUDGES = {False: ("single-v1", "single-v1-multi-turn"), True: ("single-math-v1", "single-math-v1-multi-turn")}


def read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as err:
            raise UserError(f"{path}: row {n}: not valid JSON ({err})") from None
    return rows


def row_field(path, n: int, row: dict, name: str, kind: type):
    """row[name] when it is a `kind`, else a UserError naming the file, the row and the field."""
    value = row.get(name) if isinstance(row, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserError(f"{path}: row {n}: field {name!r} must be a {kind.__name__}, got {value!r:.80}")
    return value


def _turns(path, n: int, value, name: str) -> list[str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(t, str) for t in value)):
        raise UserError(f"{path}: row {n}: field {name!r} must be a list of 2 strings, got {value!r:.80}")
    return value


def load_references(path: str | Path) -> dict[int, list[str]]:
    """question_id -> the reference answer's two turns (FastChat model-answer format)."""
    refs = {}
    for n, row in enumerate(read_jsonl(path), 1):
        qid = row_field(path, n, row, "question_id", int)
        choices = row_field(path, n, row, "choices", list)
        refs[qid] = _turns(path, n, choices[0].get("turns") if choices and isinstance(choices[0], dict) else None,
                           "choices[0].turns")
    return refs


def load_judge_prompts(path: str | Path) -> dict[str, dict]:
    """name -> {system_prompt, prompt_template, ...} for the four single-grading prompts FuseEval uses."""
    prompts = {}
    for n, row in enumerate(read_jsonl(path), 1):
        prompts[row_field(path, n, row, "name", str)] = row
        for key in ("system_prompt", "prompt_template", "output_format"):
            row_field(path, n, row, key, str)
    missing = [name for pair in JUDGES.values() for name in pair if name not in prompts]
    if missing:
        raise UserError(f"{path}: no judge prompt named {', '.join(missing)}")
    return prompts


def _beside(path: str | Path, names: list[str], what: str) -> Path:
    """The first of `names` (relative to the question file's folder) that exists: the kit's layout, FuseEval's
    (all in one data/ folder) or FastChat's (data/mt_bench/reference_answer/, data/judge_prompts.jsonl)."""
    folder = Path(path).parent
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{path}: no {what} beside it (looked for {', '.join(names)} in {folder})")


def load(path: str | Path) -> list[dict]:
    """MT-Bench questions with FuseEval's reference answers (gpt-4-0125-preview) and judge prompts found beside
    the question file; `load_questions` takes other files."""
    return load_questions(path)


def load_questions(path: str | Path, references: str | Path | None = None,
                   judge_prompts: str | Path | None = None) -> list[dict]:
    """MT-Bench questions -> items {id, category, turns, reference (2 turns, or None), temperature, judges}.

    `references` defaults to FuseEval's `gpt-4-0125-preview.jsonl` beside the question file (pass `gpt-4.jsonl` for
    FastChat's); `judge_prompts` to `judge_prompts.jsonl`. Only the reference categories carry a reference (FastChat
    ignores the questions' own `reference` field). `judges` holds each turn's judge prompt (name, system_prompt,
    prompt_template), so an item is judged without the files.
    """
    ref_name = f"{JUDGE_MODEL}.jsonl"
    ref_path = Path(references) if references else _beside(
        path, [f"fuseeval/{ref_name}", ref_name, f"reference_answer/{ref_name}"], "reference answers")
    refs = load_references(ref_path)
    prompts = load_judge_prompts(judge_prompts or _beside(
        path, ["judge_prompts.jsonl", "../judge_prompts.jsonl"], "judge prompts"))
    items = []
    for n, row in enumerate(read_jsonl(path), 1):
        qid = row_field(path, n, row, "question_id", int)
        category = row_field(path, n, row, "category", str)
        turns = _turns(path, n, row.get("turns"), "turns")
        needs_ref = category in REFERENCE_CATEGORIES
        if needs_ref and qid not in refs:
            raise UserError(f"{path}: row {n}: question_id {qid} ({category}) has no reference answer in {ref_path}")
        judges = [{k: prompts[name][k] for k in ("name", "system_prompt", "prompt_template")}
                  for name in JUDGES[needs_ref]]
        items.append({"id": qid, "category": category, "turns": turns, "reference": refs[qid] if needs_ref else None,
                      "temperature": TEMPERATURE.get(category, DEFAULT_TEMPERATURE), "judges": judges})
    return items


def decoding(family: str) -> dict:
    """FuseEval's vLLM sampling (the same for every family) at the default temperature 0.7; each item's own is
    `item_decoding`."""
    return {"temperature": DEFAULT_TEMPERATURE, "top_p": 1.0, "max_tokens": MAX_TOKENS, "stop": [], "n": 1,
            "max_model_len": MAX_MODEL_LEN}


def item_decoding(family: str, item: dict) -> dict:
    """The decoding of the item's category."""
    return {**decoding(family), "temperature": item["temperature"]}


def render_chat(messages: list[dict], family: str, tokenizer) -> str:
    """The chat as the model's template renders it for generation, leading BOS string removed for gemma/mistral."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if family in STRIP_BOS_FAMILIES and bos and text.startswith(bos):
        text = text[len(bos):]
    return text


def build_prompt(item: dict, family: str, tokenizer, previous: list[str] | tuple = ()) -> str:
    """The prompt of turn len(previous)+1: every earlier question followed by the model's own answer to it."""
    messages = []
    for question, reply in zip(item["turns"], previous):
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    messages.append({"role": "user", "content": item["turns"][len(previous)]})
    return render_chat(messages, family, tokenizer)


def generate_grouped(prompts: list[str], decodings: list[dict],
                     generate: Callable[[list[str], dict], list[str]]) -> list[str]:
    """One `generate` call per distinct decoding; the outputs back in prompt order."""
    groups: dict[str, list[int]] = {}
    for i, dec in enumerate(decodings):
        groups.setdefault(json.dumps(dec, sort_keys=True), []).append(i)
    outputs: list[str | None] = [None] * len(prompts)
    for key, idx in groups.items():
        texts = generate([prompts[i] for i in idx], json.loads(key))
        if len(texts) != len(idx):
            raise ValueError(f"generate returned {len(texts)} texts for {len(idx)} prompts")
        for i, text in zip(idx, texts):
            outputs[i] = text
    return outputs


def answer(items: list[dict], generate: Callable[[list[str], dict], list[str]], family: str,
           tokenizer) -> list[list[str]]:
    """Both turns for every item: [turn-1 answer, turn-2 answer] each, answers kept as generated (not stripped)."""
    answers: list[list[str]] = [[] for _ in items]
    decodings = [item_decoding(family, it) for it in items]
    for _turn in range(2):
        prompts = [build_prompt(it, family, tokenizer, prev) for it, prev in zip(items, answers)]
        for prev, text in zip(answers, generate_grouped(prompts, decodings, generate)):
            prev.append(text)
    return answers


def judge_messages(item: dict, answers: list[str], turn: int) -> list[dict]:
    """FastChat's judge conversation for one turn (1 or 2): [system, user] with the template's fields filled."""
    judge = item["judges"][turn - 1]
    fields = {}
    if item["reference"] is not None:
        fields["ref_answer_1"] = item["reference"][0]
        if turn == 2:
            fields["ref_answer_2"] = item["reference"][1]
    if turn == 1:
        fields.update(question=item["turns"][0], answer=answers[0])
    else:
        fields.update(question_1=item["turns"][0], question_2=item["turns"][1], answer_1=answers[0],
                      answer_2=answers[1])
    return [{"role": "system", "content": judge["system_prompt"]},
            {"role": "user", "content": judge["prompt_template"].format(**fields)}]


def parse_rating(judgment: str) -> float:
    """The judge's rating, or -1 when it gave none (FastChat's one_score_pattern, then its backup)."""
    match = RATING.search(judgment or "") or RATING_BACKUP.search(judgment or "")
    return float(match.group(1)) if match else UNRATED


def judge_answers(judge: JudgeClient | str, items: list[dict], answers: list[list[str]],
                  model: str = JUDGE_MODEL) -> list[dict]:
    """Rows {id, category, turn, judge, user_prompt, judgment, score} for both turns of every item; `judge` is a
    `JudgeClient` (concurrent, retried, cached) or a base URL (then `model` names the judge, uncached)."""
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} items but {len(answers)} answers")
    client = judge if isinstance(judge, JudgeClient) else JudgeClient(judge, model)
    jobs = [(it, ans, turn) for turn in (1, 2) for it, ans in zip(items, answers)]
    convs = [judge_messages(it, ans, turn) for it, ans, turn in jobs]
    verdicts = client.complete(convs, **JUDGE_PARAMS)
    return [{"id": it["id"], "category": it["category"], "turn": turn, "judge": it["judges"][turn - 1]["name"],
             "user_prompt": conv[1]["content"], "judgment": text, "score": parse_rating(text)}
            for (it, _, turn), conv, text in zip(jobs, convs, verdicts)]


def _stats(scores: list[float]) -> dict:
    mean, stderr = mean_stderr(scores)
    return {"mean": mean, "n": len(scores), "stderr": stderr}


def score(rows: list[dict]) -> dict:
    """MT-Bench score as show_result.py: mean rating over all rated turns, per turn and per category; unrated
    (-1) rows are left out and counted in `unrated`."""
    rated = [r for r in rows if r["score"] != UNRATED]
    categories = sorted({r["category"] for r in rows})
    return {"overall": _stats([r["score"] for r in rated]),
            "turn1": _stats([r["score"] for r in rated if r["turn"] == 1]),
            "turn2": _stats([r["score"] for r in rated if r["turn"] == 2]),
            "by_category": {c: _stats([r["score"] for r in rated if r["category"] == c]) for c in categories},
            "unrated": len(rows) - len(rated)}


def result_rows(model: str, stage: str, summary: dict) -> list[dict]:
    """results.csv rows: the MT-Bench score first, then each turn's."""
    return [result_row(model, stage, BENCHMARK, METRIC + suffix, s["mean"], s["n"], s["stderr"])
            for suffix, s in (("", summary["overall"]), ("_turn1", summary["turn1"]), ("_turn2", summary["turn2"]))]


def evaluate(items: list[dict], generate: Callable[[list[str], dict], list[str]], family: str, tokenizer,
             client: JudgeClient, model: str, stage: str, step_dir: str | Path | None = None):
    """Generate both turns, judge them, score: (results.csv rows, {BENCHMARK: one sample per question})."""
    answers = answer(items, generate, family, tokenizer)
    rows = judge_answers(client, items, answers)
    per_turn = {(r["id"], r["turn"]): r for r in rows}
    samples = [{"id": it["id"], "category": it["category"], "turns": it["turns"], "answers": ans,
                "judges": [per_turn[(it["id"], t)]["judge"] for t in (1, 2)],
                "judgments": [per_turn[(it["id"], t)]["judgment"] for t in (1, 2)],
                "scores": [per_turn[(it["id"], t)]["score"] for t in (1, 2)]} for it, ans in zip(items, answers)]
    return result_rows(model, stage, score(rows)), {BENCHMARK: samples}

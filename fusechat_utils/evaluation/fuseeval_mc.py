"""MC-Eval as FuseEval runs it: MMLU-Pro, MMLU (FuseEval's "MMLU-redux" row) and GPQA-Diamond, zero-shot CoT.

Loads the real released files, builds FuseEval's zero-shot prompt (one user message through the model's own chat
template, Qwen2.5's default system turn cut away), gives its vLLM settings, extracts the answer letter with its
three-regex chain and grades as its `save_res` (an unparsed answer gets a guess seeded with 12345, the same guess
every time). Source: fanqiwan/FuseAI@7d9a30729e4b FuseChat-3.0/FuseEval/General-Eval/MC-Eval/evaluate_from_local.py.
Hand-written: no library reproduces these prompt strings and this grader.

Items: `id`, `dataset`, `question`, `options` (list, "N/A" dropped), `answer` (the letter graded against),
`answer_index` (what the seeded guess is compared with), `category`. For MMLU-Pro both come from the row as is
(in the shipped test file question 3983 has answer "C" but answer_index 1; FuseEval keeps both, so do we); for
MMLU and GPQA `answer` is the letter of the int answer, as FuseEval's `chr(answer+65)`.

Differs from FuseEval:
- GPQA: FuseEval reads its own pre-formatted parquet (Question, options, answer int; SLIT-AI/FuseChat-3.0
  `FuseEval/General-Eval/MC-Eval/data/gpqa_formatted/diamond/train-00000-of-00001.parquet`, 198 rows, public
  there); given in eval_data_files it loads as is, in FuseEval's option order (checked on that file: 198 items,
  the oracle 198/198, a wrong answer 0). The kit does not ship it: GPQA asks that its items not be republished in
  plain text. Only when the raw Idavidrein/gpqa CSV (Question, Correct Answer, Incorrect Answer 1-3) is all a
  user has: its four options shuffled with `random.Random(question)`, fixed per question but not FuseEval's order.
- MMLU-redux (edinburgh-dawg/mmlu-redux: question, choices, answer int, error_type, ...) loads as an option;
  FuseEval never reads it. `error_type` is kept on the item; nothing is filtered.
Usage: `items = load(path)`; `text = build_prompt(items[0], "qwen25", tokenizer)`; `grade(items[0], response)`.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from fusechat_utils.errors import UserError

# evaluate_from_local.py: `choices` (the option letters) and the zero-shot prompt pieces, in order.
LETTERS = "ABCDEFGHIJKLMNOP"
HEAD = ("Please read the following multiple-choice questions and provide the most likely correct answer based on "
        "the options given.\n")
INSTRUCTION = ("- For simple problems:\nDirectly provide the answer with minimal explanation.\n\n- For complex "
               "problems:\nUse this step-by-step format:\n## Step 1: [Concise description]\n[Brief explanation]\n"
               "## Step 2: [Concise description]\n[Brief explanation]\n\nRegardless of the approach, always conclude "
               "with:\nThe best answer is [the_answer_letter].\nwhere the [the_answer_letter] is the correct letter "
               "choice.\n\n")
TAIL = "Answer: Let's think step by step."
# evaluate_from_local.py: extract_answer, extract_again, extract_final (patterns and flags as there).
EXTRACTORS = [(re.compile(r"answer is \(?([A-J])\)?"), 1), (re.compile(r".*[aA]nswer:\s*([A-J])"), 1),
              (re.compile(r"\b[A-J]\b(?!.*\b[A-J]\b)", re.DOTALL), 0)]
GUESS_SEED = 12345
GPQA_INCORRECT = ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]


def load(path) -> list[dict]:
    """Items of an MMLU-Pro, MMLU, MMLU-redux or GPQA file (.parquet, .jsonl or .csv), schema told by its columns."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    return [_item(path, n, row) for n, row in enumerate(rows, start=1)]


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise UserError(f"{path}: not a readable parquet file ({exc})") from exc
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a BOM must not rename the first column
            return list(csv.DictReader(fh))
    raise UserError(f"{path}: unknown file type {suffix!r}; expected .parquet, .jsonl or .csv")


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {n} is not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {n} is not a JSON object")
        rows.append(row)
    return rows


def _item(path: Path, n: int, row: dict) -> dict:
    if "Correct Answer" in row:
        return _gpqa_csv_item(path, n, row)
    if "Question" in row:
        return _gpqa_formatted_item(path, n, row)
    if "answer_index" in row or "question_id" in row:
        return _mmlu_pro_item(path, n, row)
    if "choices" in row:
        return _mmlu_item(path, n, row)
    raise UserError(f"{path}: row {n}: unknown schema (columns {sorted(row)}); expected MMLU-Pro (question_id, "
                    "options, answer, answer_index), MMLU (question, choices, answer) or GPQA (Question, ...)")


def _mmlu_pro_item(path: Path, n: int, row: dict) -> dict:
    options = _options(path, n, row, "options")
    answer = _field(path, n, row, "answer", str)
    index = _field(path, n, row, "answer_index", int)
    if answer not in LETTERS[:len(options)] or not 0 <= index < len(options):
        raise UserError(f"{path}: row {n}: field 'answer'/'answer_index' ({answer!r}/{index}) is not one of the "
                        f"{len(options)} options")
    return {"id": f"mmlu_pro/{_field(path, n, row, 'question_id', int)}", "dataset": "mmlu_pro",
            "question": _text(path, n, row, "question"), "options": options, "answer": answer,
            "answer_index": index, "category": row.get("category") or ""}


def _mmlu_item(path: Path, n: int, row: dict) -> dict:
    dataset = "mmlu_redux" if "error_type" in row else "mmlu"
    item = {"id": f"{dataset}/{n}", "dataset": dataset, "question": _text(path, n, row, "question"),
            "options": _options(path, n, row, "choices"), "category": row.get("subject") or dataset}
    _set_int_answer(path, n, row, item)
    if dataset == "mmlu_redux":
        item["error_type"] = row["error_type"]
    return item


def _gpqa_formatted_item(path: Path, n: int, row: dict) -> dict:
    item = {"id": f"gpqa/{n}", "dataset": "gpqa", "question": _text(path, n, row, "Question"),
            "options": _options(path, n, row, "options"), "category": "gpqa_diamond"}
    _set_int_answer(path, n, row, item)
    return item


def _gpqa_csv_item(path: Path, n: int, row: dict) -> dict:
    question = _text(path, n, row, "Question")
    correct = _text(path, n, row, "Correct Answer")
    options = [correct] + [_text(path, n, row, key) for key in GPQA_INCORRECT]
    random.Random(question).shuffle(options)  # a str seed is hashed with sha512: the same order in every process
    index = options.index(correct)
    return {"id": f"gpqa/{row.get('Record ID') or n}", "dataset": "gpqa", "question": question, "options": options,
            "answer": LETTERS[index], "answer_index": index, "category": "gpqa_diamond"}


def _set_int_answer(path: Path, n: int, row: dict, item: dict) -> None:
    """MMLU and gpqa_formatted: an int answer; FuseEval grades the letter chr(answer+65) and guesses against it."""
    index = _field(path, n, row, "answer", int)
    if not 0 <= index < len(item["options"]):
        raise UserError(f"{path}: row {n}: field 'answer' ({index}) is not one of the {len(item['options'])} options")
    item["answer"], item["answer_index"] = LETTERS[index], index


def _field(path: Path, n: int, row: dict, key: str, kind: type):
    value = row.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserError(f"{path}: row {n}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _text(path: Path, n: int, row: dict, key: str) -> str:
    value = _field(path, n, row, key, str)
    if not value.strip():
        raise UserError(f"{path}: row {n}: field {key!r} is empty")
    return value


def _options(path: Path, n: int, row: dict, key: str) -> list[str]:
    """The option texts, "N/A" padding dropped as FuseEval's `preprocess` does."""
    value = row.get(key)
    if not isinstance(value, (list, tuple)) or not all(isinstance(o, str) for o in value):
        raise UserError(f"{path}: row {n}: field {key!r} must be a list of strings, got {value!r}")
    options = [o for o in value if o != "N/A"]
    if not 2 <= len(options) <= len(LETTERS):
        raise UserError(f"{path}: row {n}: field {key!r} has {len(options)} options besides N/A; expected 2 to "
                        f"{len(LETTERS)}")
    return options


def question_text(item: dict) -> str:
    """FuseEval's zero-shot prompt before the chat template (generate_cot_prompt + format_cot_example)."""
    lines = "".join(f"{LETTERS[i]}. {opt}\n" for i, opt in enumerate(item["options"]))
    return HEAD + "Question:\n" + item["question"] + "\n" + "Options:\n" + lines + INSTRUCTION + TAIL


def build_prompt(item: dict, family: str, tokenizer) -> str:
    """The raw prompt: one user message through the model's chat template, with no system turn for Qwen2.5."""
    messages = [{"content": question_text(item), "role": "user"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # FuseEval drops the default system turn Qwen2.5's template adds ("For Qwen2.5 series"); a model outside its
    # families keeps its own template whole.
    if family != "chat_template" and "<|im_start|>system" in prompt:
        prompt = "<|im_start|>user" + prompt.split("<|im_start|>user", 1)[1]
    return prompt


def decoding(family: str, dataset: str = "mmlu_pro") -> dict:
    """FuseEval's vLLM settings; top_p is vLLM's default (FuseEval leaves it), max_model_len 8192 only for GPQA."""
    return {"temperature": 0.0, "top_p": 1.0, "max_tokens": 2048, "stop": ["Question:"], "n": 1,
            "max_model_len": 8192 if "gpqa" in dataset else 4096}


def extract_letter(text: str) -> str | None:
    for pattern, group in EXTRACTORS:
        match = pattern.search(text)
        if match:
            return match.group(group)
    return None


def seeded_guess(n_options: int) -> int:
    """save_res's guess for an unparsed answer: random.seed(12345) then randint, so fixed per option count."""
    return random.Random(GUESS_SEED).randint(0, n_options - 1)


def grade(item: dict, response: str) -> dict:
    pred = extract_letter(response)
    if pred is None:
        guess = seeded_guess(len(item["options"]))
        return {"correct": guess == item["answer_index"], "pred": None, "guess": guess}
    return {"correct": pred == item["answer"], "pred": pred, "guess": None}


def oracle_response(item: dict) -> str:
    return f"Let's think step by step. The options were weighed.\nThe best answer is {item['answer']}."


def wrong_response(item: dict) -> str:
    letter = next(c for c in LETTERS[:len(item["options"])] if c != item["answer"])
    return f"Let's think step by step. The options were weighed.\nThe best answer is {letter}."

"""FuseEval MC-Eval (MMLU-Pro, MMLU, GPQA-Diamond): loading the real files, exact prompts, extraction and grading."""

import json
import random
import time

import pytest

from fusechat_utils.chat_templates import family_tokenizer
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import fuseeval_mc as mc

MMLU_PRO = "data/benchmarks/mmlu_pro/test-00000-of-00001.parquet"
MMLU = "data/benchmarks/mmlu/test-00000-of-00001.parquet"
FIXTURES = "tests/fixtures/benchmarks"

# FuseEval's zero-shot instruction block and tail, written out from the notes (evaluate_from_local.py,
# format_cot_example with including_answer=False).
INSTRUCTION_AND_TAIL = """- For simple problems:
Directly provide the answer with minimal explanation.

- For complex problems:
Use this step-by-step format:
## Step 1: [Concise description]
[Brief explanation]
## Step 2: [Concise description]
[Brief explanation]

Regardless of the approach, always conclude with:
The best answer is [the_answer_letter].
where the [the_answer_letter] is the correct letter choice.

Answer: Let's think step by step."""

# A real MMLU-Pro row with "N/A" padding: validation question 23, from the MMLU-Pro validation parquet FuseEval
# ships (data/MMLU-Pro/data/validation-00000-of-00001.parquet). The test parquet in data/benchmarks has none.
MMLU_PRO_NA_ROW = {
    "question_id": 23, "question": "Which of the following is not a way to form recombinant DNA?",
    "options": ["Translation", "Conjugation", "Specialized transduction", "Transformation", "N/A", "N/A", "N/A",
                "N/A", "N/A", "N/A"],
    "answer": "A", "answer_index": 0,
    "cot_content": "A: Let's think step by step. The introduction of foreign DNA or RNA into bacteria or eukaryotic "
                   "cells is a common technique in molecular biology and scientific research. There are multiple "
                   "ways foreign DNA can be introduced into cells including transformation, transduction, "
                   "conjugation, and transfection. In contrast, (A) is not a way to form DNA: during translation the "
                   "ribosomes synthesize proteins from RNA. The answer is (A).",
    "category": "biology", "src": "cot_lib-high_school_biology"}


@pytest.fixture(scope="module")
def mmlu_pro():
    return mc.load(MMLU_PRO)


@pytest.fixture(scope="module")
def mmlu():
    return mc.load(MMLU)


@pytest.fixture(scope="module")
def tokenizers():
    return {family: family_tokenizer(family) for family in ("qwen25", "llama3", "gemma2")}


def _by_id(items, item_id):
    return next(i for i in items if i["id"] == item_id)


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_real_files_load_whole_with_fuseeval_fields(mmlu_pro, mmlu):
    assert len(mmlu_pro) == 12032 and len({i["id"] for i in mmlu_pro}) == 12032
    assert len(mmlu) == 14042 and len({i["id"] for i in mmlu}) == 14042
    first = mmlu[0]  # subject -> category, choices -> options, int answer -> letter, as FuseEval's load_mmlu
    assert first["category"] == "high_school_government_and_politics" and first["answer"] == "D"
    assert first["answer_index"] == 3 and len(first["options"]) == 4 and first["dataset"] == "mmlu"
    assert {len(i["options"]) for i in mmlu_pro} == {3, 4, 5, 6, 7, 8, 9, 10}
    # The shipped file's one row whose letter and index disagree keeps both, as FuseEval grades with each.
    odd = _by_id(mmlu_pro, "mmlu_pro/3983")
    assert (odd["answer"], odd["answer_index"], len(odd["options"])) == ("C", 1, 7)


def test_exact_prompt_mmlu_pro_row_qwen25_has_no_system_turn(mmlu_pro, tokenizers):
    item = _by_id(mmlu_pro, "mmlu_pro/8795")
    expected = ("<|im_start|>user\n"
                "Please read the following multiple-choice questions and provide the most likely correct answer "
                "based on the options given.\n"
                "Question:\nWhat is 0.3 \u00d7 427?\n"
                "Options:\nA. 128.1\nB. 1.281\nC. 1281\nD. 1.2810\nE. 128.10\n"
                + INSTRUCTION_AND_TAIL + "<|im_end|>\n<|im_start|>assistant\n")
    assert mc.build_prompt(item, "qwen25", tokenizers["qwen25"]) == expected


def test_exact_prompt_mmlu_row_llama3_and_gemma2(mmlu, tokenizers):
    item = _by_id(mmlu, "mmlu/12420")
    user = ("Please read the following multiple-choice questions and provide the most likely correct answer based on "
            "the options given.\nQuestion:\n(1+i)^10 =\nOptions:\nA. 1\nB. i\nC. 32\nD. 32i\n" + INSTRUCTION_AND_TAIL)
    # Llama 3.1's template always writes its dated system header; FuseEval only cuts Qwen's "<|im_start|>system".
    llama = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
             "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" + user
             + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert mc.build_prompt(item, "llama3", tokenizers["llama3"]) == llama
    gemma = "<bos><start_of_turn>user\n" + user + "<end_of_turn>\n<start_of_turn>model\n"
    assert mc.build_prompt(item, "gemma2", tokenizers["gemma2"]) == gemma


def test_qwen_default_system_prompt_is_cut(mmlu, tokenizers):
    tok = tokenizers["qwen25"]
    item = mmlu[0]
    raw = tok.apply_chat_template([{"role": "user", "content": mc.question_text(item)}], tokenize=False,
                                  add_generation_prompt=True)
    assert raw.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                          "assistant.<|im_end|>\n<|im_start|>user\n")
    prompt = mc.build_prompt(item, "qwen25", tok)
    assert prompt == raw.split("<|im_end|>\n", 1)[1]
    assert "system" not in prompt and prompt.count("<|im_start|>") == 2


def test_na_options_are_dropped_on_a_real_mmlu_pro_row(tmp_path, tokenizers):
    item = mc.load(_write_jsonl(tmp_path / "val.jsonl", [MMLU_PRO_NA_ROW]))[0]
    assert item["options"] == ["Translation", "Conjugation", "Specialized transduction", "Transformation"]
    assert (item["id"], item["answer"], item["answer_index"]) == ("mmlu_pro/23", "A", 0)
    prompt = mc.build_prompt(item, "qwen25", tokenizers["qwen25"])
    assert "D. Transformation\n- For simple problems:" in prompt and "N/A" not in prompt and "\nE. " not in prompt


def test_jsonl_fixtures_load_in_each_schema():
    pro = mc.load(f"{FIXTURES}/mmlu_pro_test.jsonl")[0]
    assert (pro["id"], pro["answer"], pro["answer_index"], len(pro["options"])) == ("mmlu_pro/70", "I", 8, 9)
    redux = mc.load(f"{FIXTURES}/mmlu_redux_test.jsonl")[0]
    assert (redux["dataset"], redux["answer"], redux["error_type"], len(redux["options"])) == \
        ("mmlu_redux", "D", "ok", 4)


def test_gpqa_csv_schema_shuffles_by_a_fixed_per_question_seed(tmp_path):
    row = json.loads(open(f"{FIXTURES}/gpqa_diamond.jsonl").readline())
    item = mc.load(f"{FIXTURES}/gpqa_diamond.jsonl")[0]
    # Pinned: the order must not change between runs or processes (it is the option order the model sees).
    assert item["options"] == ["10^-4 eV", "10^-9 eV", "10^-11 eV", "10^-8 eV"]
    assert item["options"][item["answer_index"]] == row["Correct Answer"] == "10^-4 eV"
    assert (item["id"], item["answer"], mc.decoding("llama3", item["dataset"])["max_model_len"]) == \
        ("gpqa/recAAA", "A", 8192)
    # The same row as the public CSV loads to the same item.
    csv_path = tmp_path / "gpqa_diamond.csv"
    with open(csv_path, "w", newline="") as fh:
        import csv
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    assert mc.load(csv_path) == [item]
    # Different questions get different orders: the correct answer lands in every position.
    variants = [dict(row, Question=f"{row['Question']} (variant {k})") for k in range(40)]
    positions = {i["answer_index"] for i in mc.load(_write_jsonl(tmp_path / "v.jsonl", variants))}
    assert positions == {0, 1, 2, 3}


def test_gpqa_formatted_schema_loads_as_is(tmp_path):
    row = {"Question": "Which is heavier?", "options": ["a", "b", "c", "d"], "answer": 2, "Canary String": "x"}
    item = mc.load(_write_jsonl(tmp_path / "f.jsonl", [row]))[0]
    assert (item["options"], item["answer"], item["answer_index"]) == (["a", "b", "c", "d"], "C", 2)


@pytest.mark.parametrize("text, letter", [
    ("So the answer is (B).", "B"),  # 1: "answer is (X)"
    ("The best answer is J", "J"),
    ("Answer: A at first, but on reflection the answer is C.", "C"),  # 1 wins over 2
    ("The Answer is B", "B"),
    ("Final answer: D", "D"),  # 2: "answer:" with either case of a
    ("Answer:\n  E", "E"),  # 2: \s* crosses a newline
    ("answer: A, no wait, answer: G", "G"),  # 2: .* is greedy within a line
    ("Answer: A\nFinal answer: C", "A"),  # 2: .* stops at a newline, so the first line's match wins
    ("I pick C because of D. Done", "D"),  # 3: the last standalone letter
    ("It is B.\nNot A.\nthe end", "A"),  # 3: across lines (DOTALL)
    ("ANSWER IS C", "C"),  # 3: "answer is" is case sensitive, the lone C still counts
    ("I cannot tell.", "I"),  # 3: the pronoun I is a standalone letter too
    ("The answer is K", None),  # K is outside A-J
    ("no capital letters, nothing to take", None),
    ("", None),
])
def test_extraction_chain(text, letter):
    assert mc.extract_letter(text) == letter


def test_unparsed_answers_get_the_same_seeded_guess_every_time(mmlu, mmlu_pro):
    # save_res: random.seed(12345); random.randint(0, len(options) - 1), reseeded for every answer.
    random.seed(12345)
    assert mc.seeded_guess(4) == random.randint(0, 3) == 3
    assert [mc.seeded_guess(n) for n in range(2, 11)] == [1, 1, 3, 3, 3, 3, 6, 6, 6]
    results = [mc.grade(i, "not sure, sorry.") for i in mmlu]
    assert all(r["pred"] is None and r["guess"] == 3 for r in results)
    assert sum(r["correct"] for r in results) == sum(i["answer_index"] == 3 for i in mmlu) == 3776
    pro = mc.grade(_by_id(mmlu_pro, "mmlu_pro/3983"), "no idea")  # 7 options: guess 3, answer_index 1
    assert (pro["guess"], pro["correct"]) == (3, False)


def test_grade_compares_the_letter_and_the_guess_with_what_fuseeval_uses(mmlu_pro, mmlu):
    odd = _by_id(mmlu_pro, "mmlu_pro/3983")  # answer "C", answer_index 1
    assert mc.grade(odd, "The best answer is C.") == {"correct": True, "pred": "C", "guess": None}
    assert mc.grade(odd, "The best answer is B.")["correct"] is False
    item = _by_id(mmlu, "mmlu/12420")  # answer 3 -> "D"
    assert mc.grade(item, "32i, so the answer is (D)")["correct"] is True
    assert mc.grade(item, "the answer is (A)")["correct"] is False


def test_decoding_is_fuseevals():
    base = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 2048, "stop": ["Question:"], "n": 1,
            "max_model_len": 4096}
    for family in ("llama3", "qwen25", "gemma2"):
        assert mc.decoding(family) == mc.decoding(family, "mmlu") == base
        assert mc.decoding(family, "gpqa") == dict(base, max_model_len=8192)


def test_oracle_and_wrong_responses_on_whole_real_sets(mmlu_pro, mmlu):
    start = time.perf_counter()
    for items in (mmlu_pro, mmlu):
        right = sum(mc.grade(i, mc.oracle_response(i))["correct"] for i in items)
        wrong = sum(mc.grade(i, mc.wrong_response(i))["correct"] for i in items)
        assert right / len(items) >= 0.99 and wrong / len(items) <= 0.01
        assert right == len(items) and wrong == 0
    print(f"oracle/wrong on {len(mmlu_pro) + len(mmlu)} items: {time.perf_counter() - start:.2f} s")


@pytest.mark.parametrize("row, message", [
    ({"question_id": 1, "question": "Q?", "answer": "A", "answer_index": 0}, "row 2: field 'options'"),
    ({"question_id": 1, "question": "Q?", "options": ["x", "y"], "answer": "C", "answer_index": 2},
     "row 2: field 'answer'/'answer_index'"),
    ({"question_id": "7", "question": "Q?", "options": ["x", "y"], "answer": "A", "answer_index": 0},
     "row 2: field 'question_id'"),
    ({"question": "  ", "choices": ["x", "y"], "answer": 0}, "row 2: field 'question' is empty"),
    ({"question": "Q?", "choices": ["x", "y"], "answer": 5}, "row 2: field 'answer'"),
    ({"Question": "Q?", "Correct Answer": "x", "Incorrect Answer 1": "y", "Incorrect Answer 2": "z"},
     "row 2: field 'Incorrect Answer 3'"),
    ({"prompt": "Q?"}, "row 2: unknown schema"),
])
def test_bad_rows_name_the_file_row_and_field(tmp_path, row, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", [MMLU_PRO_NA_ROW, row])
    with pytest.raises(UserError, match="bad.jsonl: " + message.replace("(", r"\(").replace(")", r"\)")):
        mc.load(path)


def test_bad_files_are_user_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(MMLU_PRO_NA_ROW) + "\n{not json\n")
    with pytest.raises(UserError, match="broken.jsonl: line 2 is not JSON"):
        mc.load(broken)
    table = pa.table({"question": ["Q?", "R?"], "subject": ["s", "s"], "choices": [["x", "y"], ["x", "y"]],
                      "answer": [1, 9]})
    pq.write_table(table, tmp_path / "mmlu.parquet")
    with pytest.raises(UserError, match=r"mmlu.parquet: row 2: field 'answer' \(9\)"):
        mc.load(tmp_path / "mmlu.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    with pytest.raises(UserError, match="junk.parquet: not a readable parquet file"):
        mc.load(tmp_path / "junk.parquet")
    with pytest.raises(UserError, match="unknown file type"):
        mc.load(_write_jsonl(tmp_path / "x.txt", [MMLU_PRO_NA_ROW]))

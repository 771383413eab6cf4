"""LiveCodeBench code generation as FuseEval runs it (lcb_runner, `--scenario codegeneration`): rows, prompts, grading.

- `load(path)` reads `livecodebench/code_generation_lite` rows (jsonl). `private_test_cases` is JSON or
  base64 -> zlib -> pickle of one `str` (the JSON text); the pickle is read with `pickletools` and only a pickled
  str is accepted, so nothing in a row is ever executed while loading.
- `build_prompt` renders lcb_runner's prompt for the family's LMStyle (LLaMa3, GemmaChat, CodeQwenInstruct).
  FuseEval renders LLaMa3 with the hard-coded `meta-llama/Meta-Llama-3-8B-Instruct` tokenizer and GemmaChat with
  `google/gemma-2-9b-it`'s, whatever model is evaluated; so do we (the kit's shipped copies of those templates,
  rendered by the tokenizer given for its special tokens). The texts are what FuseEval passes to vLLM's
  `LLM.generate`, which adds the tokenizer's special tokens: GemmaChat strips its leading BOS for that reason,
  and LLaMa3 keeps it (FuseEval's Llama runs start with two BOS).
- `grade` takes the code between the first two lines holding a ``` fence (lcb_runner's `extract_code`), and runs
  public then private tests, in order, stopping at the first failure, through the kit's sandbox
  (`verify.run_code`, one process per response), 6 s per test and (6 + 1) * tests + 5 s in all (lcb_runner's
  global limit). Both test types start from lcb_runner's import prelude (`from typing import *`, ... ,
  recursion limit 6e5), which solutions rely on (`List[int]` in the starter code).
  stdin: the program is executed once per test in a fresh namespace named `__main__` with sys.stdin/sys.stdout
  (and `open(0)`) swapped for the test's input and a buffer. functional: the program is executed once,
  `Solution().<func_name>` (or a top-level function) is called with one JSON value per input line, the result is
  compared with the JSON output, tuples read as lists.
- `in_window` filters by contest date; `pass_at_1` is lcb_runner's Pass@1 (mean over problems of the share of the
  n samples that pass).

Written by hand: lcb_runner is not a package on PyPI and its checker (testing_util.py) is not a library. What
differs from lcb_runner's checker, and why:
- stdout comparison (`outputs_match`) is lcb_runner's, in its order (FuseEval's copy,
  LiveCodeBench/lcb_runner/evaluation/testing_util.py, run_test): the whole output equals the expected one after
  stripping its ends (or each line's); or its lines equal the expected lines (split on "\n", empty ones dropped,
  each stripped), with or without its own empty lines; or every line is one number, not all of them digit strings,
  and they agree within np.allclose's tolerance (1e-8 + 1e-5 * |expected|). Nothing else passes: lcb_runner's
  token-set conversions compute no verdict (its set comparison is commented out), so "2 1" is not "1 2", and
  "0.5000001 2" is not "0.5 2". Checked case by case against lcb_runner's own run_test (tests).
- a stdin program runs under `__name__ == "__main__"` (lcb_runner unwraps only a final `if __name__` block and
  wraps the rest in a function, which breaks programs using `global`), and sys.stdin has `.buffer` (lcb_runner's
  StringIO does not). These are correct programs that lcb_runner marks wrong; ours passes them.
- functional: lcb_runner also accepts an output equal to expected[0] and turns the keys of a dict argument into
  ints; ours does not.
- the sandbox caps memory at 1 GiB and has no network (lcb_runner sets no memory limit); a solution needing more
  fails here.
- kept from lcb_runner: `exit()`/`quit()` are None (its reliability_guard sets them so; a program calling them
  fails), and sys.exit() ends a stdin test normally.

Usage: `items = load("test.jsonl")`; `prompt = build_prompt(items[0], "qwen25", tok)`;
`grade(items[0], response)["correct"]`.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import pickletools
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import families
from fusechat_utils.graded_asserts import HOST
from fusechat_utils.verify import run_code

# In the sandbox the checker's functions are the body of the tests function, whose parameter this is; here, the same.
_fusechat_plain = HOST["plain"]

TEST_TIMEOUT_S = 6  # lcb_runner --timeout (per test)

# lcb_runner/runner/parser.py defaults (FuseEval's test.sh keeps them) and vllm_runner.py's max_model_len.
DECODING = {"n": 10, "temperature": 0.2, "top_p": 0.95, "max_tokens": 2000, "stop": ["###"], "max_model_len": 4096}

# Contest-date windows (inclusive, compared as datetimes like compute_scores.py). FuseEval's test.sh passes only
# `--start_date 2024-06-30` to compute_scores, names the output livecodebench-20240701-20241101.txt, and its README
# labels the column "LiveCodeBench 2408-2411". "as_run" is what its scores were computed on: its start date, and
# release_latest as of Dec 2024, whose last problems are from about Nov 2024. FuseEval set no end date, so a newer
# release would add problems it never saw; the label's last day bounds the window to what it could have scored.
WINDOWS = {"as_run": ("2024-06-30", "2024-11-30"), "label": ("2024-08-01", "2024-11-30"),
           "file_name": ("2024-07-01", "2024-11-01")}
DEFAULT_WINDOW = "as_run"

REQUIRED = ("question_content", "platform", "question_id", "contest_date", "starter_code", "public_test_cases",
            "private_test_cases", "metadata")

# FuseEval Code-Eval/LiveCodeBench/lcb_runner/prompts/code_generation.py, class PromptConstants (exact strings).
SYSTEM_MESSAGE_GENERIC = ("You are an expert Python programmer. You will be given a question (problem specification) "
                          "and will generate a correct Python program that matches the specification and passes all "
                          "tests. You will NOT return anything except for the program.")
SYSTEM_MESSAGE_CODEQWEN = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user"
FORMATTING_MESSAGE_WITH_STARTER_CODE = ("You will use the following starter code to write the solution to the problem "
                                        "and enclose your code within delimiters.")
FORMATTING_WITHOUT_STARTER_CODE = ("Read the inputs from stdin solve the problem and write the answer to stdout (do "
                                   "not directly test on the sample inputs). Enclose your code within delimiters as "
                                   "follows.")
CODEQWEN_INSTRUCTION = ("You will be given a question (problem specification) and will generate a correct Python "
                        "program that matches the specification and passes all tests. You will NOT return anything "
                        "except for the program.\n\n")
# The tokenizers lcb_runner/prompts/code_generation.py loads for these styles, whatever model is evaluated.
FUSEEVAL_TEMPLATE_MODEL = {"llama3": "meta-llama/Meta-Llama-3-8B-Instruct", "gemma2": "google/gemma-2-9b-it"}

# lcb_runner's testing_util.py prefixes every solution with `from m import *` for these modules in this order, then
# `import m` for all but builtins/typing, then raises the recursion limit.
PRELUDE_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
                   "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")
PRELUDE = ("".join(f"from {m} import *\n" for m in PRELUDE_MODULES)
           + "".join(f"import {m}\n" for m in PRELUDE_MODULES if m not in ("builtins", "typing"))
           + "sys.setrecursionlimit(6 * 10**5)\n")

# The only pickle opcodes a pickled str (protocols 0-5) is made of.
STR_PICKLE_OPS = {"PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "MEMOIZE", "PUT",
                  "BINPUT", "LONG_BINPUT", "STOP"}
STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}


# ----------------------------------------------------------------------------------------------------------------
# rows


def tests_json(s: str) -> str:
    """The JSON text of a test-case field: the field itself when it is JSON, else base64 -> zlib -> pickled str.

    Raises ValueError when it is neither, or when the pickle holds anything but one str (it is parsed with
    pickletools, never unpickled, so a crafted pickle cannot run code).
    """
    try:
        json.loads(s)
        return s
    except json.JSONDecodeError:
        pass
    try:
        data = zlib.decompress(base64.b64decode(s.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, zlib.error) as err:
        raise ValueError(f"neither JSON nor base64 -> zlib ({err})") from None
    try:
        ops = list(pickletools.genops(data))
    except Exception as err:  # genops raises ValueError and others on malformed pickles
        raise ValueError(f"not a valid pickle ({err})") from None
    refused = [op.name for op, _, _ in ops if op.name not in STR_PICKLE_OPS]
    strings = [arg for op, arg, _ in ops if op.name in STRING_OPS]
    if refused or len(strings) != 1:
        raise ValueError(f"refused: the pickle must hold one str, it has opcodes {refused or 'without one str'}")
    return strings[0]


def decode_tests(s: str) -> list[dict]:
    """The test cases of a public/private_test_cases field (see tests_json); ValueError if malformed."""
    cases = json.loads(tests_json(s))
    if not isinstance(cases, list) or not all(isinstance(c, dict) and {"input", "output", "testtype"} <= set(c)
                                              for c in cases):
        raise ValueError("not a list of {input, output, testtype} objects")
    return cases


def _item(row: dict) -> dict:
    """One row -> item; raises KeyError(field) for a missing field, ValueError((field, why)) for a bad one."""
    missing = [f for f in REQUIRED if f not in row]
    if missing:
        raise KeyError(missing[0])
    counts, types = {}, set()
    for field in ("public_test_cases", "private_test_cases"):
        try:
            cases = decode_tests(row[field])
        except (ValueError, TypeError, AttributeError) as err:
            raise ValueError(field, str(err)) from None
        counts[field] = len(cases)
        types |= {c["testtype"] for c in cases}
    try:
        datetime.fromisoformat(row["contest_date"])
    except (ValueError, TypeError) as err:
        raise ValueError("contest_date", str(err)) from None
    try:
        metadata = json.loads(row["metadata"])
    except (ValueError, TypeError) as err:
        raise ValueError("metadata", str(err)) from None
    if not isinstance(metadata, dict):
        raise ValueError("metadata", "not a JSON object")
    if types - {"stdin", "functional"} or len(types) > 1:
        raise ValueError("public_test_cases", f"test types {sorted(types)}: expected all stdin or all functional")
    if "functional" in types and not metadata.get("func_name"):
        raise ValueError("metadata", "functional tests need a func_name")
    return {**row, "id": row["question_id"], "metadata": metadata, "func_name": metadata.get("func_name"),
            "testtype": types.pop() if types else "stdin", "n_tests": sum(counts.values())}


def load(path: str | Path) -> list[dict]:
    """code_generation_lite rows (jsonl) -> items (the row's fields, metadata parsed, id = question_id).

    Test cases stay as the row holds them (private ones are large); they are decoded once here to check them and
    again when graded. A bad row raises UserError naming the file, the row (1-based) and the field.
    """
    items = []
    with open(path, encoding="utf-8") as lines:  # release files run to gigabytes: one row at a time
        for n, line in enumerate(lines, 1):
            if line.strip():
                items.append(_load_row(path, n, line))
    return items


def _load_row(path, n: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: row {n}: not JSON ({err})") from None
    if not isinstance(row, dict):
        raise UserError(f"{path}: row {n}: not a JSON object")
    try:
        return _item(row)
    except KeyError as err:
        raise UserError(f"{path}: row {n}: field {err} missing") from None
    except ValueError as err:
        field, why = err.args
        raise UserError(f"{path}: row {n}: field {field!r}: {why}") from None


def in_window(item: dict, start: str | None = WINDOWS[DEFAULT_WINDOW][0],
              end: str | None = WINDOWS[DEFAULT_WINDOW][1]) -> bool:
    """start <= contest_date <= end (dates YYYY-MM-DD, None = open), as compute_scores.py compares them."""
    date = datetime.fromisoformat(item["contest_date"])
    return ((start is None or datetime.strptime(start, "%Y-%m-%d") <= date)
            and (end is None or date <= datetime.strptime(end, "%Y-%m-%d")))


# ----------------------------------------------------------------------------------------------------------------
# prompts and decoding


def question_template(item: dict) -> str:
    """lcb_runner's generic question template (get_generic_question_template_answer)."""
    text = f"### Question:\n{item['question_content']}\n\n"
    if item["starter_code"]:
        text += f"### Format: {FORMATTING_MESSAGE_WITH_STARTER_CODE}\n```python\n{item['starter_code']}\n```\n\n"
    else:
        text += f"### Format: {FORMATTING_WITHOUT_STARTER_CODE}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def codeqwen_prompt(item: dict) -> str:
    """LMStyle.CodeQwenInstruct (FuseEval's style for Qwen2.5-7B-Instruct): a raw string, no chat template."""
    text = f"{SYSTEM_MESSAGE_CODEQWEN}\n\n{CODEQWEN_INSTRUCTION}Question: {item['question_content']}\n\n"
    if item["starter_code"]:
        text += f"{FORMATTING_MESSAGE_WITH_STARTER_CODE}\n```python\n{item['starter_code']}\n```\n\n<|im_end|>\n"
    else:
        text += f"{FORMATTING_WITHOUT_STARTER_CODE}\n```python\n# YOUR CODE HERE\n```\n\n<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def build_prompt(item: dict, family: str, tokenizer=None) -> str:
    """The prompt text FuseEval hands to vLLM for this family (see the module docstring for the templates used).

    tokenizer: the evaluated model's (its bos/special tokens are used; the template is FuseEval's hard-coded one);
    None builds the kit's family tokenizer. qwen25 ignores it.
    """
    if family == "qwen25":
        return codeqwen_prompt(item)
    if family == families.NATIVE:  # LMStyle.LLaMa3's messages in the model's own template
        return families.system_then_user(tokenizer, SYSTEM_MESSAGE_GENERIC, question_template(item))
    if family not in FUSEEVAL_TEMPLATE_MODEL:
        raise ValueError(f"livecodebench: unknown family {family!r} (llama3, qwen25, gemma2)")
    from fusechat_utils.chat_templates import template_for

    tokenizer = _family_tokenizer(family) if tokenizer is None else tokenizer
    if family == "llama3":  # LMStyle.LLaMa3
        messages = [{"role": "system", "content": SYSTEM_MESSAGE_GENERIC},
                    {"role": "user", "content": question_template(item)}]
    else:  # LMStyle.GemmaChat: Gemma 2 has no system turn
        messages = [{"role": "user", "content": SYSTEM_MESSAGE_GENERIC + "\n" + question_template(item)}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         chat_template=template_for(FUSEEVAL_TEMPLATE_MODEL[family]))
    bos = tokenizer.bos_token or ""
    return text[len(bos):] if family == "gemma2" and bos and text.startswith(bos) else text


@lru_cache(maxsize=None)
def _family_tokenizer(family: str):
    from fusechat_utils.chat_templates import family_tokenizer

    return family_tokenizer(family)


def decoding(family: str) -> dict:
    """FuseEval's LiveCodeBench sampling (the same for every family)."""
    return {**DECODING, "stop": list(DECODING["stop"])}


# ----------------------------------------------------------------------------------------------------------------
# grading: the functions from _timed to _check_cases run inside the sandbox (their source is sent with each program)


def _timed(fn, timeout_s: float):
    import signal

    def on_alarm(signum, frame):
        raise TimeoutError(f"time limit exceeded ({timeout_s:g} s)")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _stdin_case(code, prelude: str, text: str, timeout_s: float) -> str:
    """Run the compiled program on one input; returns what it printed."""
    import builtins
    import io
    import sys

    class Sink(io.BytesIO):
        def close(self):  # a program may close sys.stdout; what it printed must stay readable
            pass

    data, sink, saved = text.encode("utf-8"), Sink(), (sys.stdin, sys.stdout)

    def open_stdin(file, mode="r", *args, **kwargs):
        if file in (0, "/dev/stdin"):
            return io.BytesIO(data) if "b" in mode else io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        return builtins.open(file, mode, *args, **kwargs)

    sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(sink, encoding="utf-8")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(prelude, namespace)  # before the program: `from sys import *` binds stdin/stdout to this test's
        namespace.update(open=open_stdin, exit=None, quit=None)  # lcb_runner sets builtins exit/quit to None
        _timed(lambda: exec(code, namespace), timeout_s)
    except SystemExit:
        pass
    finally:
        try:
            sys.stdout.flush()
        except ValueError:
            pass
        sys.stdin, sys.stdout = saved
    return sink.getvalue().decode("utf-8", "replace")


def _solution_method(code, program: str, prelude: str, func_name: str, timeout_s: float):
    import builtins

    namespace = {"__name__": "tmp_sol", "__builtins__": builtins}  # lcb_runner's module name: no __main__ blocks
    exec(prelude, namespace)
    namespace.update(exit=None, quit=None)
    _timed(lambda: exec(code, namespace), timeout_s)
    owner = namespace["Solution"]() if "class Solution" in program else None
    return getattr(owner, func_name) if owner is not None else namespace[func_name]


def _as_lists(value):
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


def _float_lines(got: list[str], want: list[str]) -> bool:
    """Every line one number, not all of them digit strings, all within np.allclose's default tolerance."""
    if all(a.isdigit() and b.isdigit() for a, b in zip(got, want)):  # lcb_runner's combined_int_check
        return False
    try:
        x, y = [float(a) for a in got], [float(b) for b in want]
    except ValueError:
        return False
    return len(x) == len(y) and all(a == b or abs(a - b) <= 1e-8 + 1e-5 * abs(b) for a, b in zip(x, y))


def outputs_match(got: str, want: str) -> bool:
    """Printed output vs expected output as lcb_runner's run_test decides it (module docstring), in its order."""
    lines = got.splitlines()
    if want.strip() in ("\n".join(lines).strip(), "\n".join(line.strip() for line in lines).strip()):
        return True
    want_lines = [line.strip() for line in want.split("\n") if line]
    kept = [line for line in lines if line]
    return lines in ([want], want_lines) or kept == want_lines or _float_lines(kept, want_lines)


def _check_cases(program: str, tests: list[str], func_name: str | None, prelude: str, timeout_s: float) -> None:
    """Every test in order; raises AssertionError naming the first that fails (what the sandbox reports)."""
    import json

    cases = [case for text in tests for case in json.loads(text)]
    step, failure = "setup", None
    try:
        code = compile(program, "<solution>", "exec")
        method = _solution_method(code, program, prelude, func_name, timeout_s) if func_name else None
        for i, case in enumerate(cases):
            step = f"test {i}"
            if method is None:
                ok = outputs_match(_stdin_case(code, prelude, case["input"], timeout_s), case["output"])
            else:
                args = [json.loads(line) for line in case["input"].split("\n")]
                # plain first: a returned object's own __eq__ must not decide (graded_asserts)
                ok = _fusechat_plain(_as_lists(_timed(lambda: method(*args), timeout_s))) == json.loads(case["output"])
            if not ok:
                failure = f"{step}: wrong answer"
                break
    except BaseException as err:  # the program's own errors, SystemExit from a functional call, time-outs
        failure = f"{step}: {type(err).__name__}: {err}"[:300]
    if failure:
        raise AssertionError(failure)


SANDBOX_FUNCTIONS = (_timed, _stdin_case, _solution_method, _as_lists, _float_lines, outputs_match,
                     _check_cases)
CHECKER = "\n\n".join(inspect.getsource(f) for f in SANDBOX_FUNCTIONS) + (
    "\n\n_check_cases(PROGRAM, TESTS, FUNC_NAME, PRELUDE, TEST_TIMEOUT_S)\n")


@lru_cache(maxsize=8)
def _cases(field: str) -> tuple[str, int]:
    """(JSON text, number of tests) of a test-case field; cached because each item is graded n times."""
    text = tests_json(field)
    return text, len(json.loads(text))


NO_CODE = "no code block (fewer than two ``` lines)"


def extract_code(response: str) -> str | None:
    """The lines between the first two lines holding ``` (lcb_runner's extract_code); None if there are not two."""
    lines = (response or "").split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    return "\n".join(lines[fences[0] + 1:fences[1]]) if len(fences) >= 2 else None


def check_script(item: dict, code: str) -> tuple[str, str, float]:
    """(program, tests, timeout_s) for verify.run_code: the solution and the tests as data, then CHECKER."""
    (public, n_public), (private, n_private) = (_cases(item[f]) for f in ("public_test_cases", "private_test_cases"))
    data = (f"PROGRAM = {code!r}\nTESTS = [{public!r}, {private!r}]\nFUNC_NAME = {item.get('func_name')!r}\n"
            f"PRELUDE = {PRELUDE!r}\nTEST_TIMEOUT_S = {TEST_TIMEOUT_S!r}\n")
    return data, CHECKER, (TEST_TIMEOUT_S + 1) * (n_public + n_private) + 5


def grade(item: dict, response: str) -> dict:
    """correct (all tests pass), pred (the extracted code, None without a fenced block), reason (the sandbox's)."""
    return grade_many([(item, response)])[0]


def grade_many(pairs: list[tuple[dict, str]], workers: int = 2) -> list[dict]:
    """grade over (item, response) pairs, `workers` sandboxes at a time, in input order; equal jobs run once."""
    codes = [extract_code(response) for _, response in pairs]
    jobs = {i: check_script(item, code) for i, ((item, _), code) in enumerate(zip(pairs, codes)) if code is not None}
    unique = list(dict.fromkeys(jobs.values()))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = dict(zip(unique, pool.map(lambda job: run_code(*job), unique)))
    return [{"correct": verdicts[jobs[i]].passed, "pred": code, "reason": verdicts[jobs[i]].reason}
            if code is not None else {"correct": False, "pred": None, "reason": NO_CODE}
            for i, code in enumerate(codes)]


def pass_at_1(results_per_item: list[list]) -> float:
    """Mean over problems of the share of samples correct (grade dicts or bools), a fraction in [0, 1]."""
    shares = [sum(bool(r["correct"] if isinstance(r, dict) else r) for r in rs) / len(rs) for rs in results_per_item]
    return sum(shares) / len(shares) if shares else 0.0


def oracle_response(item: dict) -> str | None:
    """The row's reference solution in a fenced block; None for real rows, which carry none."""
    solution = item.get("solution")
    return f"```python\n{solution}\n```" if solution else None


def wrong_response(item: dict) -> str:
    """A program that prints nothing (stdin) or returns None (functional)."""
    if item.get("func_name"):
        return f"```python\nclass Solution:\n    def {item['func_name']}(self, *args):\n        return None\n```"
    return "```python\npass\n```"

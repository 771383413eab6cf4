"""Step 07 evaluation: `EvalConfig`, `run`; benchmark adapters, HumanEval, the toy benchmarks, paper tables."""

from fusechat_utils.evaluation.step import EvalConfig, run

__all__ = ["EvalConfig", "run"]

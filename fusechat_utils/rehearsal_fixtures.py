"""Fixture files of the 8 source datasets for a paper profile's rehearsal, each in its dataset's real schema.

The real rows in tests/fixtures/real_samples/ come first (UltraFeedback, Magpie-Pro-DPO, OpenMathInstruct-2,
alpaca_gpt4_zh: their README says what each is); every other row is written here in the dataset's published
columns and types (`prompt_sources.DATASETS`, recipe notes §6), with short texts of ours. The rows include what
01's paper filters must drop, so those paths run too: Magpie's real rows are "Coding & Debugging" (code_or_math),
HelpSteer2 repeats a prompt with another response (duplicate) and holds a multi-turn prompt (multi_turn), one
leetcode problem has no parseable example and one self-oss response no asserts (no_tests).
Usage: `counts = write_fixtures(folder)` -> {file name: rows}; 01 reads them with `prompts_source: fixtures`.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.io import read_jsonl, write_jsonl
from fusechat_utils.prompt_sources import DATASETS

REAL_SAMPLES = PROJECT_ROOT / "tests" / "fixtures" / "real_samples"

GENERAL = [
    "Suggest three names for a small bakery that sells sourdough bread.",
    "Write a short poem about the first snow of winter.",
    "How should I prepare for a job interview at a museum?",
    "Give me tips for keeping houseplants alive in a dark apartment.",
    "Explain why the sky looks blue during the day and red at sunset.",
    "Describe a relaxing weekend itinerary in Lisbon.",
    "What are good habits for learning a new language as an adult?",
    "Summarize the plot of a fairy tale about a clever fox.",
    "Write a polite email declining an invitation to a wedding.",
    "What should I pack for a week of hiking in the Alps?",
    "Recommend some board games for a family with young children.",
    "How do bees communicate the location of flowers?",
    "Draft a toast for my sister's graduation party.",
    "What is the difference between weather and climate?",
    "Help me plan a vegetable garden for a sunny balcony.",
    "Describe the smell of a forest after rain.",
    "Why do cats purr, and what does it mean?",
    "Give advice to someone moving to a new city alone.",
    "Write a haiku about a lighthouse.",
    "How can I make my morning routine less stressful?",
    "Explain the rules of chess to a beginner in simple words.",
    "What are the benefits of reading fiction?",
    "Suggest a theme for a neighbourhood summer festival.",
    "How do I apologize to a friend I forgot to call?",
    "Describe a day in the life of a lighthouse keeper.",
    "Write a riddle whose answer is a shadow.",
    "What makes a good bedtime story for toddlers?",
]
CHINESE = ["请写一首关于春天的短诗。", "给我三个周末放松的建议。", "介绍一下长城的历史。", "如何养成早睡早起的习惯？",
           "推荐几本适合青少年阅读的小说。", "描述一下你理想中的旅行。"]
MATH = [("Tom has 3 boxes with 4 apples in each box. How many apples does he have?", "12"),
        ("A train travels 60 miles per hour for 2 hours. How far does it go?", "120"),
        ("What is the remainder when 17 is divided by 5?", "2"),
        ("If $x + 7 = 10$, what is $x$?", "3"),
        ("The sum of two consecutive integers is 15. What is the larger one?", "8")]
LEETCODE = [  # (slug, title, content, python solution)
    ("add-two-integers", "Add Two Integers", "Given two integers `num1` and `num2`, return the sum of the two "
     "integers.\n\n**Example 1:**\n\n**Input:** num1 = 12, num2 = 5\n**Output:** 17\n\n**Example 2:**\n\n"
     "**Input:** num1 = -10, num2 = 4\n**Output:** -6\n",
     "```python\ndef sum(num1, num2):\n    return num1 + num2\n```\nThe sum is returned directly."),
    ("running-sum-of-1d-array", "Running Sum of 1d Array", "Given an array `nums`, return the running sum of "
     "`nums`.\n\n**Example 1:**\n\n**Input:** nums = \\[1,2,3,4\\]\n**Output:** \\[1,3,6,10\\]\n",
     "```python\ndef runningSum(nums):\n    out, total = [], 0\n    for n in nums:\n        total += n\n"
     "        out.append(total)\n    return out\n```\nWe keep a running total."),
    ("to-lower-case", "To Lower Case", "Given a string `s`, return the string after replacing every uppercase "
     "letter with the same lowercase letter.\n\n**Example 1:**\n\n**Input:** s =  \"Hello \"\n"
     "**Output:**  \"hello \"\n",
     "```python\ndef toLowerCase(s):\n    return s.lower()\n```\nPython strings have a lower method."),
    ("design-parking-system", "Design Parking System", "Design a parking system for a parking lot.\n\n"
     "**Example 1:**\n\n**Input**\n\\[ \"ParkingSystem \", \"addCar \"\\]\n**Output**\n\\[null, true\\]\n",
     "```python\nclass ParkingSystem:\n    def __init__(self, big, medium, small):\n        self.slots = "
     "[big, medium, small]\n```\nNo example parses as a call: this row has no tests."),
]
SELF_OSS = [  # (instruction, function, asserts)
    ("Write a Python function `count_vowels(text)` that returns the number of vowels in a string.",
     "def count_vowels(text):\n    return sum(ch in 'aeiouAEIOU' for ch in text)",
     "assert count_vowels('hello') == 2\nassert count_vowels('') == 0"),
    ("Create a Python function `is_palindrome(s)` that checks whether a string reads the same backwards.",
     "def is_palindrome(s):\n    return s == s[::-1]",
     "assert is_palindrome('level')\nassert not is_palindrome('levels')"),
    ("Implement a Python function `flatten(pairs)` that flattens a list of pairs into one list.",
     "def flatten(pairs):\n    return [x for pair in pairs for x in pair]",
     "assert flatten([(1, 2), (3, 4)]) == [1, 2, 3, 4]"),
    ("Write a Python function `greet(name)` that returns a greeting.", "def greet(name):\n    return 'Hi ' + name",
     ""),
]


def _uuid(text: str) -> str:
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))


def _real(name: str) -> list[dict]:
    path = REAL_SAMPLES / DATASETS[name].fixture_name
    return read_jsonl(path) if path.is_file() else []


def ultrafeedback(prompts: list[str]) -> list[dict]:
    aspects = ("instruction_following", "honesty", "truthfulness", "helpfulness")
    return _real("UltraFeedback") + [
        {"source": "evol_instruct", "instruction": p, "models": ["gpt-4", "llama-2-13b-chat"],
         "correct_answers": ["None"], "incorrect_answers": ["None"],
         "completions": [{"model": "gpt-4", "principle": "helpfulness", "custom_system_prompt": "",
                          "response": "A short answer.", "annotations": {a: {"Rating": "4", "Rationale": "Clear."}
                                                                         for a in aspects}}]} for p in prompts]


def magpie_pro(prompts: list[str]) -> list[dict]:
    rows = []
    for p in prompts:
        answers = ["A helpful answer.", "A shorter answer."]
        rows.append({"uuid": _uuid(p), "instruction": p, "gen_input_configs": {"temperature": 1.0, "top_p": 1.0},
                     "intent": "The user wants advice.", "knowledge": "Everyday knowledge.", "difficulty": "easy",
                     "input_quality": "good", "quality_explanation": "The query is clear.",
                     "task_category": "Information seeking", "input_length": len(p), "responses": answers,
                     "gen_response_configs": {"prompt": p, "temperature": 0.8, "top_p": 0.9},
                     "rewards_armorm": [{"score": 0.12}, {"score": 0.09}],
                     "chosen": [{"role": "user", "content": p}, {"role": "assistant", "content": answers[0]}],
                     "rejected": [{"role": "user", "content": p}, {"role": "assistant", "content": answers[1]}]})
    return _real("Magpie-Pro-DPO-100K-v0.1") + rows


def helpsteer2(prompts: list[str]) -> list[dict]:
    def row(prompt: str, response: str) -> dict:
        return {"prompt": prompt, "response": response, "helpfulness": 3, "correctness": 3, "coherence": 4,
                "complexity": 1, "verbosity": 2}
    multi = f"{prompts[0]}\n<extra_id_1>Assistant\nSure.\n<extra_id_1>User\nAnd a second one?"
    return [row(p, r) for p in prompts for r in ("First response.", "Second response.")] + [row(multi, "Another.")]


def openmath(problems: list[tuple[str, str]]) -> list[dict]:
    return _real("OpenMathInstruct-2") + [
        {"problem": q, "generated_solution": f"Working it through step by step gives $\\boxed{{{a}}}$.",
         "expected_answer": a, "problem_source": "augmented_gsm8k"} for q, a in problems]


def leetcode(problems) -> list[dict]:
    return [{"id": i, "slug": slug, "title": title, "difficulty": "Easy", "content": content, "python": python,
             "java": "", "c++": "", "javascript": ""} for i, (slug, title, content, python) in enumerate(problems, 1)]


def self_oss(problems) -> list[dict]:
    rows = []
    for i, (instruction, code, asserts) in enumerate(problems):
        tests = f"\n\n### Tests\n\n```python\n{asserts}\n```" if asserts else ""
        response = f"### Implementation\n\n```python\n{code}\n```{tests}"
        rows.append({"instruction": instruction, "response": response, "prompt": "Create a coding exercise.",
                     "fingerprint": None, "sha1": hashlib.sha1(instruction.encode()).hexdigest(), "seed": code,
                     "concepts": ["string processing"], "id": 1000 + i})
    return rows


def magpie_chinese(prompts: list[str]) -> list[dict]:
    return [{"uuid": _uuid(p), "model": "Qwen/Qwen2-72B-Instruct", "instruction": p, "response": "好的。",
             "conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": "好的。"}],
             "gen_input_configs": {"temperature": 1.0, "top_p": 1.0}, "task_category": "Creative writing",
             "other_task_category": [], "difficulty": "easy", "intent": "用户想要建议。", "knowledge": "常识。",
             "input_quality": "good", "quality_explanation": "问题清楚。", "language": "ZH"} for p in prompts]


def write_fixtures(folder: str | Path) -> dict[str, int]:
    """Write the 8 files into `folder` (file names as 01 reads them); returns rows per file."""
    rows = {
        "UltraFeedback": ultrafeedback(GENERAL[0:9]),
        "Magpie-Pro-DPO-100K-v0.1": magpie_pro(GENERAL[9:18]),
        "HelpSteer2": helpsteer2(GENERAL[18:27]),
        "OpenMathInstruct-2": openmath(MATH),
        "leetcode": leetcode(LEETCODE),
        "self-oss-instruct-sc2-exec-filter-50k": self_oss(SELF_OSS),
        "alpaca_gpt4_zh": _real("alpaca_gpt4_zh"),
        "Magpie-Qwen2-Pro-200K-Chinese": magpie_chinese(CHINESE),
    }
    folder = Path(folder)
    for name, data in rows.items():
        write_jsonl(folder / DATASETS[name].fixture_name, data)
    return {DATASETS[name].fixture_name: len(data) for name, data in rows.items()}

"""03_scoring: RM scores (sequence-classification and ArmoRM-style outputs), batching, verification merge, run()."""

import sys
import types
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from fusechat_utils import scoring
from fusechat_utils.scoring import ScoreConfig, rm_scores

WORDS = "the a cat dog sat on mat is big small red blue one two three four five yes no answer code".split()
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
PROMPTS = ["the cat sat", "a dog", "is the mat big or small", "one two", "red", "the blue dog sat on a mat"]
RESPONSES = ["yes", "the dog is big", "small", "three four five one two three", "blue red", "no"]


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    """A 1-layer Llama sequence-classification RM with its own word-level tokenizer and chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("rm")
    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=SPECIAL[4:])
    fast.chat_template = TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=0,
                         max_position_embeddings=128)
    LlamaForSequenceClassification(config).save_pretrained(path)
    return scoring.load_rm(ScoreConfig(score_reward_model=str(path), score_dtype="float32"))


def test_batched_scores_equal_one_at_a_time_in_input_order(tiny_rm):
    model, tokenizer = tiny_rm
    single = [rm_scores(model, tokenizer, [p], [r], batch_size=1, progress=False)[0] for p, r in zip(PROMPTS, RESPONSES)]
    batched = rm_scores(model, tokenizer, PROMPTS, RESPONSES, batch_size=4, progress=False)
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(round(s, 6) for s in single)) == len(single)  # the RM tells the inputs apart


def test_inputs_go_through_the_rm_chat_template_without_a_second_bos(tiny_rm):
    _, tokenizer = tiny_rm
    (ids,) = scoring.encode_pairs(tokenizer, ["the cat"], ["yes"], max_length=64)
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", "<|user|>", "the", "cat", "</s>", "<|assistant|>",
                                                    "yes", "</s>"]
    (cut,) = scoring.encode_pairs(tokenizer, ["the cat"], ["yes"], max_length=5)
    assert cut == ids[:5]


@dataclass
class ArmoOutput:
    score: torch.Tensor
    logits: torch.Tensor


class TinyArmo(torch.nn.Module):
    """ArmoRM's contract: reads the last non-pad token (located via the pad id), returns output.score."""

    def __init__(self, vocab: int, pad_id: int):
        super().__init__()
        self.config = types.SimpleNamespace(pad_token_id=pad_id)
        torch.manual_seed(1)
        self.emb = torch.nn.Embedding(vocab + 1, 4)  # ArmoRM: vocab 128257, pad 128256

    def forward(self, input_ids, attention_mask=None):
        last = (input_ids != self.config.pad_token_id).int().cumsum(-1).argmax(-1)
        h = self.emb(input_ids).cumsum(1)[torch.arange(len(input_ids)), last]
        return ArmoOutput(score=h.sum(-1, keepdim=True), logits=h)


def test_armorm_path_reads_output_score_with_right_padding(tiny_rm):
    _, tokenizer = tiny_rm
    model = TinyArmo(len(tokenizer), pad_id=len(tokenizer))  # like ArmoRM's 128256: an id outside the text vocab
    single = [rm_scores(model, tokenizer, [p], [r], batch_size=1, progress=False)[0] for p, r in zip(PROMPTS, RESPONSES)]
    for kind in ("auto", "armorm"):
        batched = rm_scores(model, tokenizer, PROMPTS, RESPONSES, batch_size=6, kind=kind, progress=False)
        assert batched == pytest.approx(single, abs=1e-5)
    logits = rm_scores(model, tokenizer, PROMPTS, RESPONSES, batch_size=6, kind="sequence_classification",
                       progress=False)
    assert logits != pytest.approx(single, abs=1e-3)


def test_armorm_kind_on_a_plain_classifier_is_an_error(tiny_rm):
    model, tokenizer = tiny_rm
    with pytest.raises(ValueError, match="no .score"):
        rm_scores(model, tokenizer, PROMPTS[:1], RESPONSES[:1], kind="armorm", progress=False)
    with pytest.raises(ValueError, match="score_rm_kind"):
        ScoreConfig(score_rm_kind="armo")


@pytest.fixture
def fake_verify(monkeypatch):
    """Stand-in verify module: the merge logic is what is under test here, not the checkers."""
    calls = []
    fake = types.SimpleNamespace(
        check_math=lambda response, gold: response.strip() == gold,
        extract_code=lambda response: response.replace("```python", "").replace("```", ""),
        static_check=lambda program, entry: (f"def {entry}" in program, "ok" if f"def {entry}" in program else
                                             f"no def {entry}"),
        run_code_many=lambda items, timeout_s, workers: calls.append(items) or [
            types.SimpleNamespace(passed="return 1" in p, reason="ok" if "return 1" in p else "assert failed")
            for p, _ in items])
    monkeypatch.setitem(sys.modules, "fusechat_utils.verify", fake)
    return calls


def scoring_tables():
    prompts = pd.DataFrame([
        {"prompt_id": "g", "prompt": "the cat", "gold_answer": None, "tests": None, "entry_point": None},
        {"prompt_id": "m", "prompt": "one two", "gold_answer": "3", "tests": None, "entry_point": None},
        {"prompt_id": "c", "prompt": "code", "gold_answer": None, "tests": "assert f() == 1", "entry_point": "f"},
    ])
    responses = pd.DataFrame([
        ("g", "UltraFeedback", "general", "yes"), ("m", "OpenMathInstruct-2", "math", "3"),
        ("m", "OpenMathInstruct-2", "math", "4"), ("c", "leetcode", "code", "def f(): return 1"),
        ("c", "leetcode", "code", "def f(): return 2"), ("c", "leetcode", "code", "print(1)"),
    ], columns=["prompt_id", "dataset", "category", "response"])
    responses = responses.assign(source_model="A", sample_index=range(6), seed=0, finish_reason="stop", n_tokens=3)
    return prompts, responses


def test_verify_rows_fills_math_and_code_and_skips_static_failures(fake_verify):
    prompts, responses = scoring_tables()
    df = scoring.join_prompts(responses, prompts, "responses.parquet")
    out = scoring.verify_rows(df)
    assert out["correct"].tolist() == [None, True, False, None, None, None]
    assert out["static_ok"].tolist() == [None, None, None, True, True, False]
    assert out["tests_passed"].tolist() == [None, None, None, True, False, False]
    assert out["verify_reason"].tolist()[-1] == "static: no def f"
    assert len(fake_verify) == 1 and len(fake_verify[0]) == 2  # the static failure was never run


def test_a_response_without_its_prompt_names_the_row(fake_verify):
    prompts, responses = scoring_tables()
    with pytest.raises(ValueError, match=r"row 3 field 'prompt_id' 'c' .*not in prompts.parquet"):
        scoring.join_prompts(responses, prompts[prompts["prompt_id"] != "c"], "responses.parquet")


def test_run_writes_scored_parquet_with_the_03_schema(tiny_rm, tmp_path, fake_verify):
    prompts, responses = scoring_tables()
    (tmp_path / "01_prompts").mkdir()
    (tmp_path / "02_sampling").mkdir()
    prompts.to_parquet(tmp_path / "01_prompts" / "prompts.parquet")
    responses.to_parquet(tmp_path / "02_sampling" / "responses.parquet")
    rm_path = tiny_rm[1].name_or_path
    result = scoring.run(ScoreConfig(run_dir=str(tmp_path), score_reward_model=rm_path, score_dtype="float32"))
    scored = pd.read_parquet(tmp_path / "03_scoring" / "scored.parquet")
    assert set(scoring.RESPONSE_COLUMNS + ["prompt", "gold_answer", "rm_score"] + scoring.VERIFY_COLUMNS) <= set(
        scored.columns)
    assert scored["rm_score"].tolist() == pytest.approx(
        rm_scores(*tiny_rm, scored["prompt"].tolist(), scored["response"].tolist(), progress=False), abs=1e-5)
    assert scored["correct"].tolist()[1:3] == [True, False]
    assert result["n_responses"] == 6

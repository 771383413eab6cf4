"""The paper models' real chat templates (package data) and tokenizers that render them, for stand-in models.

FuseEval formats prompts per target family (llama3, qwen25, gemma2); a stand-in model must carry the real
family's template and special tokens so that a prompt renders byte for byte as for the real model.
Usage: `tok = family_tokenizer("llama3")`; `tok.apply_chat_template(msgs, tokenize=False)`;
`template_for("Qwen/Qwen2.5-7B-Instruct")`.
"""

from __future__ import annotations

from importlib import resources

FAMILY_MODEL = {"llama3": "meta-llama/Llama-3.1-8B-Instruct", "qwen25": "Qwen/Qwen2.5-7B-Instruct",
                "gemma2": "google/gemma-2-9b-it", "mistral": "mistralai/Mistral-Large-Instruct-2407"}
# The special tokens each family's template and generation config use (bos, eos, the turn markers).
FAMILY_TOKENS = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
               "extra": ["<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>", "<|eom_id|>"]},
    "qwen25": {"bos_token": None, "eos_token": "<|im_end|>", "extra": ["<|im_start|>", "<|endoftext|>"]},
    "gemma2": {"bos_token": "<bos>", "eos_token": "<eos>", "extra": ["<start_of_turn>", "<end_of_turn>", "<pad>"]},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>", "extra": ["[INST]", "[/INST]"]},
}


def template_for(model_id: str) -> str:
    """The chat template of a hub model id (e.g. "google/gemma-2-9b-it"); KeyError names the ones shipped."""
    name = model_id.replace("/", "__") + ".jinja"
    folder = resources.files("fusechat_utils") / "data" / "chat_templates"
    path = folder / name
    if not path.is_file():
        known = sorted(p.name.removesuffix(".jinja").replace("__", "/") for p in folder.iterdir()
                       if p.name.endswith(".jinja"))
        raise KeyError(f"no chat template shipped for {model_id!r}; shipped: {', '.join(known)}")
    return path.read_text()


FAMILY_ARCH = {"llama3": "llama", "qwen25": "qwen2", "gemma2": "gemma2", "mistral": "mistral"}
STAND_IN_CORPUS = ["Please reason step by step, and put your final answer within \\boxed{}.",
                   "Question: What is 12 + 30? The answer is 42. def f(x):\n    return x * 2\n",
                   "The best answer is A. Options: A. B. C. D. 请一步一步地思考。答案是"]


def family_tokenizer(family: str, corpus: list[str] | None = None, vocab_size: int = 400):
    """A small byte-level BPE tokenizer (any text encodes) with the family's real template and special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILY_TOKENS[family]
    specials = [t for t in [spec["bos_token"], spec["eos_token"], *spec["extra"]] if t]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus or STAND_IN_CORPUS, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    extra = [t for t in spec["extra"] if t not in (spec["bos_token"], spec["eos_token"])]
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=spec["bos_token"], eos_token=spec["eos_token"],
                                  additional_special_tokens=extra, chat_template=template_for(FAMILY_MODEL[family]))
    tok.pad_token = tok.eos_token
    return tok


def stand_in_model(path, family: str, hidden: int = 64, layers: int = 1, seed: int = 0) -> str:
    """A random-weight model of the family's architecture with `family_tokenizer`, saved like a hub model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = family_tokenizer(family)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    heads = max(1, hidden // 64)  # head_dim 64: vLLM's CPU attention rejects smaller heads
    config = AutoConfig.for_model(FAMILY_ARCH[family], vocab_size=len(tok), hidden_size=hidden,
                                  intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  num_key_value_heads=heads, head_dim=hidden // heads, max_position_embeddings=8192,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return str(path)

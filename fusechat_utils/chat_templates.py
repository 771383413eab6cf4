"""The paper models' real chat templates (package data) and tokenizers that render them, for stand-in models.

FuseEval formats prompts per target family (llama3, qwen25, gemma2); a stand-in model must carry the real
family's template and special tokens so that a prompt renders byte for byte as for the real model.
Every paper model (the five targets, the five sources, ArmoRM) has a stand-in: `HUB_FAMILY` names its family,
and `model_id=` gives the stand-in that model's own template (Llama 3.2's date line, Qwen2.5-Math's system prompt).
Usage: `tok = family_tokenizer("llama3")`; `tok.apply_chat_template(msgs, tokenize=False)`;
`template_for("Qwen/Qwen2.5-7B-Instruct")`; `stand_in_for("google/gemma-2-27b-it", folder)`;
`stand_in_reward_model(folder)` (ArmoRM's custom output, through trust_remote_code).
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
# The eos tokens of each family's hub generation_config.json (data/chat_templates/PROVENANCE.md): Llama 3.x stops
# at end_of_text, eom and eot; Qwen2.5 at im_end and endoftext; Gemma 2 at eos and end_of_turn.
FAMILY_GENERATION_EOS = {"llama3": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
                         "qwen25": ["<|im_end|>", "<|endoftext|>"], "gemma2": ["<eos>", "<end_of_turn>"],
                         "mistral": ["</s>"]}
# Every hub model the paper profiles name -> its stand-in family (its template: the model's own, `template_for`).
HUB_FAMILY = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama3", "meta-llama/Llama-3.1-70B-Instruct": "llama3",
    "meta-llama/Llama-3.2-3B-Instruct": "llama3", "meta-llama/Llama-3.2-1B-Instruct": "llama3",
    "Qwen/Qwen2.5-7B-Instruct": "qwen25", "Qwen/Qwen2.5-72B-Instruct": "qwen25",
    "Qwen/Qwen2.5-Math-72B-Instruct": "qwen25", "google/gemma-2-9b-it": "gemma2", "google/gemma-2-27b-it": "gemma2",
    "mistralai/Mistral-Large-Instruct-2407": "mistral",
}
# ArmoRM's own template was not found; it descends from Meta-Llama-3-8B-Instruct, whose template is the closest
# (data/chat_templates/PROVENANCE.md).
ARMORM = "RLHFlow/ArmoRM-Llama3-8B-v0.1"
ARMORM_TEMPLATE = "meta-llama/Meta-Llama-3-8B-Instruct"


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


def family_tokenizer(family: str, corpus: list[str] | None = None, vocab_size: int = 400, model_id: str | None = None):
    """A small byte-level BPE tokenizer (any text encodes) with the family's real special tokens and the chat template
    of `model_id` (default: the family's FAMILY_MODEL)."""
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
                                  additional_special_tokens=extra,
                                  chat_template=template_for(model_id or FAMILY_MODEL[family]))
    tok.pad_token = tok.eos_token
    return tok


def stand_in_model(path, family: str, hidden: int = 64, layers: int = 1, seed: int = 0,
                   model_id: str | None = None) -> str:
    """A random-weight model of the family's architecture with `family_tokenizer` (`model_id`'s template), saved like
    a hub model, its generation config stopping where the family's does."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = family_tokenizer(family, model_id=model_id)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    heads = max(1, hidden // 64)  # head_dim 64: vLLM's CPU attention rejects smaller heads
    config = AutoConfig.for_model(FAMILY_ARCH[family], vocab_size=len(tok), hidden_size=hidden,
                                  intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  num_key_value_heads=heads, head_dim=hidden // heads, max_position_embeddings=8192,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids(FAMILY_GENERATION_EOS[family])
    model.save_pretrained(path)
    return str(path)


def stand_in_for(model_id: str, path, **kwargs) -> str:
    """The stand-in of a paper model (HUB_FAMILY): its family's architecture, special tokens, its own template."""
    if model_id not in HUB_FAMILY:
        raise KeyError(f"no stand-in family for {model_id!r}; known: {', '.join(HUB_FAMILY)}")
    return stand_in_model(path, HUB_FAMILY[model_id], model_id=model_id, **kwargs)


def stand_in_reward_model(path, hidden: int = 32, seed: int = 0, pad_token_id: int = 128256) -> str:
    """ArmoRM's stand-in: a Llama backbone with the kit's `armorm_stand_in` modelling code saved beside it (loaded
    through trust_remote_code, as ArmoRM's modeling_custom.py) returning `.score`; the Llama 3 template and special
    tokens; ArmoRM's embedding of 128,257 rows, so its pad id 128256 (outside the text vocabulary) is a real row."""
    import torch
    from transformers import LlamaConfig

    from fusechat_utils.armorm_stand_in import ArmoRMStandIn, gating_pattern

    tok = family_tokenizer("llama3", model_id=ARMORM_TEMPLATE)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=pad_token_id + 1, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, head_dim=hidden,
                         max_position_embeddings=8192, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=pad_token_id, num_objectives=19, gating_temperature=10.0,
                         gating_token_pattern=gating_pattern(tok))
    ArmoRMStandIn.register_for_auto_class("AutoModelForSequenceClassification")
    model = ArmoRMStandIn(config)
    with torch.no_grad():  # ArmoRM-sized spread: one source's responses to a prompt differ by ~0.01-0.1 (gap window)
        model.regression_layer.weight.mul_(30.0)
    model.save_pretrained(path)  # writes auto_map and copies armorm_stand_in.py beside the weights
    return str(path)

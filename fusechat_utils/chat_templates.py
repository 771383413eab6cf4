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


def family_tokenizer(family: str, vocab_text: str = "abcdefghijklmnopqrstuvwxyz0123456789 .,:;!?()[]{}-+*/=_'\"\n#"):
    """A small character-level tokenizer with the family's real template and special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILY_TOKENS[family]
    specials = [t for t in [spec["bos_token"], spec["eos_token"], *spec["extra"]] if t]
    vocab = {tok: i for i, tok in enumerate(["<unk>", *specials, *dict.fromkeys(vocab_text)])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token=spec["bos_token"],
                                  eos_token=spec["eos_token"], additional_special_tokens=spec["extra"],
                                  chat_template=template_for(FAMILY_MODEL[family]))
    tok.pad_token = tok.eos_token
    return tok

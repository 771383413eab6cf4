"""Per-model tokenizers (trained with `tokenizers`) and chat templates in each model family's real style.

Usage: `tok = make_tokenizer("llama", corpus)`; `tok.save_pretrained(folder)`.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

LLAMA = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
# Qwen3-style ChatML with {% generation %} markers so TRL can train on assistant tokens only.
TARGET = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{{ m['content'] }}<|im_end|>{% endgeneration %}\n{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# style -> (template, bos, eos, pad, extra special tokens, pre-tokenizer kind, vocab size)
STYLES = {
    "llama": (LLAMA, "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
              ["<|start_header_id|>", "<|end_header_id|>"], "digits", 420),
    "qwen2": (CHATML, None, "<|im_end|>", "<|endoftext|>", ["<|im_start|>"], "bytelevel", 380),
    "gemma2": (GEMMA, "<bos>", "<end_of_turn>", "<pad>", ["<start_of_turn>", "<eos>"], "whitespace", 400),
    "mistral": (MISTRAL, "<s>", "</s>", "<unk>", ["[INST]", "[/INST]"], "char", 0),
    "target": (TARGET, None, "<|im_end|>", "<|endoftext|>", ["<|im_start|>"], "digits", 360),
}


def _pre_tokenizer(kind: str):
    byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=kind != "char")
    if kind == "digits":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte])
    if kind == "whitespace":
        return pre_tokenizers.Sequence([pre_tokenizers.Split(" ", "merged_with_next"), byte])
    return byte


def make_tokenizer(style: str, corpus: list[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer for `style` trained on `corpus` (vocab 0 = bytes only, no merges)."""
    template, bos, eos, pad, extra, kind, vocab = STYLES[style]
    specials = [t for t in (bos, eos, pad) if t] + extra
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer(kind)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    size = vocab or len(alphabet) + len(specials)
    trainer = trainers.BpeTrainer(vocab_size=max(size, len(alphabet) + len(specials)), special_tokens=specials,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(corpus if vocab else [], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   additional_special_tokens=extra, padding_side="left")
    fast.chat_template = template
    return fast

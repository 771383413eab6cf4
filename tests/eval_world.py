"""A tiny evaluation world for the 07_eval tests: a causal LM, a reward model, toy benchmark files."""

import json

import torch

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

TOY_ROWS = [
    {"prompt": "What is 2 + 3?", "answer": "5", "gold": "5", "tests": None, "entry_point": None,
     "family": "arith", "category": "math", "language": "en"},
    {"prompt": "Write add(a, b).", "answer": None, "gold": None, "tests": "assert add(1, 2) == 3",
     "entry_point": "add", "family": "funcs", "category": "code", "language": "en"},
    {"prompt": "Reverse the word abc.", "answer": "cba", "gold": None, "tests": None, "entry_point": None,
     "family": "reverse", "category": "general", "language": "en"},
    {"prompt": "Say hello twice.", "answer": "hello hello", "gold": None, "tests": None, "entry_point": None,
     "family": "reverse", "category": "general", "language": "en"},
    {"prompt": "把 abc 倒过来。", "answer": "cba", "gold": None, "tests": None, "entry_point": None,
     "family": "zh_reverse", "category": "chinese", "language": "zh"},
]


def build_tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [f"what is {a} + {b} answer {a + b} def add return abc cba" for a in range(20) for b in range(5)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|pad|>", "<|bos|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|bos|>", eos_token="<|im_end|>",
                                  pad_token="<|pad|>", chat_template=CHATML)
    tok.save_pretrained(folder)
    return tok


def build_models(root):
    """root/target (Qwen2 causal LM) and root/reward (Qwen2 sequence classifier, 1 label)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, Qwen2Config

    paths = {}
    for name in ("target", "reward"):
        tok = build_tokenizer(root / name)
        torch.manual_seed(0)
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id, num_labels=1)
        cls = AutoModelForCausalLM if name == "target" else AutoModelForSequenceClassification
        cls.from_config(cfg).save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths


def write_toy_benchmarks(folder, rows=TOY_ROWS):
    folder.mkdir(parents=True, exist_ok=True)
    for family in sorted({r["family"] for r in rows}):
        lines = [json.dumps(r, ensure_ascii=False) for r in rows if r["family"] == family]
        (folder / f"{family}.jsonl").write_text("\n".join(lines) + "\n")
    return str(folder)

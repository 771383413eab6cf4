"""One toy-world model, built in its own process: tokenizer, model, pre-training, save, reload, measure."""

from __future__ import annotations

import os


def _pretraining_set(kind: str, spec_name: str, recipe) -> list[dict]:
    """The target: a little of every domain, plain answers. A source: its strong domain, the general domain, a little
    of the rest, answered in its persona (style, blind spot, errors: pretrain.source_answer)."""
    import random

    from fusechat_utils.toy import pretrain, tasks

    if kind == "target":
        return [ex for fam in tasks.FAMILIES for ex in tasks.examples(fam, "pretrain", recipe.target_examples,
                                                                      recipe.seed)]
    persona, rng = tasks.PERSONAS[spec_name], random.Random(f"{spec_name}:{recipe.seed}")
    sizes = {fam: recipe.strong_examples if fam == persona["strong"] else
             recipe.general_examples if fam == "general" else recipe.weak_examples for fam in tasks.FAMILIES}
    return [{**ex, "answer": pretrain.source_answer(ex, persona, rng, recipe.error_rate)}
            for fam in tasks.FAMILIES for ex in tasks.examples(fam, "pretrain", sizes[fam], recipe.seed + 1)]


def _corpus(recipe) -> list[str]:
    from fusechat_utils.toy import tasks

    styles = [persona["style"] for persona in tasks.PERSONAS.values()]
    return [f"{ex['prompt']} {tasks.styled(ex, ex['answer'], styles[i % len(styles)])}" for fam in tasks.FAMILIES
            for i, ex in enumerate(tasks.examples(fam, "pretrain", 400, recipe.seed))]


def build_model(kind: str, spec_name: str, strong: str | None, recipe, out_dir: str) -> dict:
    """Train and save one model; returns what the manifest records about it (params, times, held-out accuracy)."""
    import torch

    from fusechat_utils.toy.nets import SPECS

    spec = SPECS[spec_name]

    torch.set_num_threads(recipe.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from fusechat_utils import models
    from fusechat_utils.toy import nets, pretrain

    tok = nets.train_tokenizer(spec, _corpus(recipe))
    steps, batch = recipe.schedule(kind, strong)
    if kind == "reward":
        model = nets.new_model(spec, tok, recipe.seed, num_labels=1)
        stats = pretrain.train_reward(model, tok, pretrain.preference_pairs(recipe.reward_pairs, "pretrain",
                                                                            recipe.seed, recipe.reward_style_bias),
                                      steps, batch, recipe.reward_lr, out_dir + ".trainer", recipe.seed)
    else:
        model = nets.new_model(spec, tok, recipe.seed)
        stats = pretrain.train_causal(model, tok, _pretraining_set(kind, spec_name, recipe), steps, recipe.source_lr,
                                      batch, recipe.seed)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    # Measure the saved copy, loaded the way the pipeline loads hub ids.
    tok = models.load_tokenizer(out_dir)
    info = {"kind": kind, "architecture": spec.arch, "strong_domain": strong, "vocab_size": len(tok),
            "params": sum(p.numel() for p in model.parameters()), **stats}
    if kind == "reward":
        loaded = models.load_reward_model(out_dir).eval()
        info["heldout_pairwise_accuracy"] = pretrain.pairwise_accuracy(
            loaded, tok, pretrain.preference_pairs(recipe.eval_examples, "heldout", recipe.seed + 7))
        info["heldout_general_pairwise_accuracy"] = pretrain.pairwise_accuracy(
            loaded, tok, pretrain.preference_pairs(4 * recipe.eval_examples, "heldout", recipe.seed + 7,
                                                   families=("general",)))
        info["prefers_verbose_style"] = pretrain.pairwise_accuracy(loaded, tok, pretrain.style_pairs(
            recipe.eval_examples, recipe.seed + 8))
    else:
        info["heldout_accuracy"] = pretrain.accuracy(models.load_causal_lm(out_dir).eval(), tok,
                                                     recipe.eval_examples, recipe.seed + 7)
    return info


def main(argv: list[str]) -> None:
    """`python -m fusechat_utils.toy.worker JOB.json [JOB.json ...]`: the jobs in order, in this process (its own
    torch thread pool); each job's info file is written when it is done."""
    from fusechat_utils.io import read_json, write_json
    from fusechat_utils.toy import Recipe

    for path in argv:
        job = read_json(path)
        info = build_model(job["kind"], job["spec"], job["strong"], Recipe(**job["recipe"]), job["out_dir"])
        write_json(job["out_dir"] + ".info.json", info)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

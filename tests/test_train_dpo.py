"""06_dpo: the trainer's LN-DPO loss equals a by-hand computation; run_dpo trains, picks a checkpoint, saves."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from test_train_sft import StopAt, build_pairs, build_tiny_model

from fusechat_utils.train_dpo import DPOStepConfig, dpo_splits, run_dpo

PAIRS = [
    ([{"role": "user", "content": "what is 3 + 1"}], "answer 4", "answer 7 reverse abc cba"),
    ([{"role": "user", "content": "reverse abc"}], "cba", "answer 12 abc"),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    return {"root": root, "model": build_tiny_model(root / "sft")}


def completion_logp(model, tok, prompt, answer):
    """Sum of log p(completion token) and the number of completion tokens, from the chat template by hand."""
    p_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    full = tok.apply_chat_template(prompt + [{"role": "assistant", "content": answer}], tokenize=True,
                                   return_dict=False)
    assert full[: len(p_ids)] == p_ids
    ids = torch.tensor([full])
    with torch.no_grad():
        logp = F.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    per_token = logp.gather(1, targets[:, None])[:, 0][len(p_ids) - 1:]
    return per_token.sum().item(), len(full) - len(p_ids)


def trainer_loss(policy, ref, tok, loss_type, beta, out):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    data = Dataset.from_list([{"prompt": p, "chosen": [{"role": "assistant", "content": c}],
                               "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS])
    args = DPOConfig(output_dir=str(out), use_cpu=True, bf16=False, report_to="none", beta=beta,
                     loss_type=loss_type, per_device_train_batch_size=len(PAIRS), max_length=128)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=data, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch).item()


def test_sigmoid_norm_loss_equals_the_length_normalized_loss_by_hand(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["model"])
    policy = AutoModelForCausalLM.from_pretrained(tiny["model"]).eval()
    ref = AutoModelForCausalLM.from_pretrained(tiny["model"]).eval()
    torch.manual_seed(1)
    with torch.no_grad():  # a policy that differs from the reference, else every log-ratio is 0
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    beta, by_hand, plain = 10.0, [], []
    for prompt, chosen, rejected in PAIRS:
        (pw, nw), (pl, nl) = (completion_logp(policy, tok, prompt, a) for a in (chosen, rejected))
        (rw, _), (rl, _) = (completion_logp(ref, tok, prompt, a) for a in (chosen, rejected))
        assert nw != nl, "pairs of different lengths, so normalizing matters"
        by_hand.append(-F.logsigmoid(torch.tensor(beta * ((pw - rw) / nw - (pl - rl) / nl))).item())
        plain.append(-F.logsigmoid(torch.tensor(beta * ((pw - rw) - (pl - rl)))).item())
    norm = trainer_loss(policy, ref, tok, "sigmoid_norm", beta, tmp_path / "a")
    sig = trainer_loss(policy, ref, tok, "sigmoid", beta, tmp_path / "b")
    assert norm == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-4)
    assert sig == pytest.approx(sum(plain) / len(plain), rel=1e-4)
    assert abs(norm - sig) > 1e-3


def test_dpo_splits_hold_out_a_seeded_slice_and_name_bad_rows(tmp_path):
    import pandas as pd

    build_pairs(tmp_path, n_dpo=20)
    train, held = dpo_splits(tmp_path / "04_pairs" / "dpo.parquet", 0.25, seed=0)
    assert (len(train), len(held)) == (15, 5)
    assert not {str(r["prompt"]) for r in held} & {str(r["prompt"]) for r in train} - {None}
    bad = pd.read_parquet(tmp_path / "04_pairs" / "dpo.parquet")
    bad.at[3, "chosen"] = [{"text": "x"}]
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet row 3: field 'chosen'"):
        dpo_splits(tmp_path / "bad.parquet", 0.1, seed=0)


def test_run_dpo_trains_keeps_the_better_of_the_last_two_checkpoints_and_saves(tiny):
    run = tiny["root"] / "run"
    build_pairs(run, n_dpo=40)
    shutil.copytree(tiny["model"], run / "05_sft" / "model")
    cfg = DPOStepConfig(run_dir=str(run), target_model=tiny["model"], dpo_max_steps=9, dpo_save_steps=4,
                        dpo_global_batch_size=8, dpo_per_device_train_batch_size=4, dpo_learning_rate=5e-3,
                        dpo_eval_fraction=0.2, dpo_logging_steps=1, dpo_max_length=64)
    result = run_dpo(cfg)
    m, step_dir = result["metrics"], run / "06_dpo"
    assert m["steps"] == 9 and m["pairs_train"] == 32 and m["pairs_eval"] == 8
    choice = m["checkpoint_choice"]
    assert set(choice["candidates"]) == {"checkpoint-8", "checkpoint-9"} and choice["chosen"] in choice["candidates"]
    assert json.loads((step_dir / "checkpoint_choice.json").read_text()) == choice
    assert m["train_loss_last"] < m["train_loss_first"]
    for name in ("loss.png", "rewards_margins.png", "rewards_accuracies.png", "model/model.safetensors"):
        assert (step_dir / name).exists(), name


def test_a_stopped_dpo_run_resumes_and_ends_at_the_same_step(tiny):
    run = tiny["root"] / "run_resume"
    build_pairs(run, n_dpo=40)
    shutil.copytree(tiny["model"], run / "05_sft" / "model")
    cfg = DPOStepConfig(run_dir=str(run), target_model=tiny["model"], dpo_max_steps=8, dpo_save_steps=3,
                        dpo_global_batch_size=8, dpo_per_device_train_batch_size=8, dpo_eval_fraction=0.2,
                        dpo_logging_steps=1, dpo_max_length=64)
    assert run_dpo(cfg, callbacks=[StopAt(3).cb])["metrics"]["steps"] == 3
    second = run_dpo(cfg)
    assert second["metrics"]["steps"] == 8
    assert set(second["metrics"]["checkpoint_choice"]["candidates"]) == {"checkpoint-6", "checkpoint-8"}
    steps = [r["step"] for r in second["log"].to_dict("records") if r.get("loss") == r.get("loss")]
    assert steps == list(range(1, 9)), steps


def test_run_dpo_trains_from_an_external_file_and_records_it(tiny, tmp_path):
    ask = lambda i: {"role": "user", "content": f"what is {i} + 1"}  # noqa: E731
    rows = [{"chosen": [ask(i), {"role": "assistant", "content": f"answer {i + 1}"}],
             "rejected": [ask(i), {"role": "assistant", "content": "abc"}]}
            for i in range(10)]  # TRL's implicit prompt: the shared first turn
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps(rows))
    run = tiny["root"] / "run_external"
    shutil.copytree(tiny["model"], run / "05_sft" / "model")  # no 04_pairs folder: the step does not need one
    cfg = DPOStepConfig(run_dir=str(run), target_model=tiny["model"], dpo_data=str(data), dpo_max_steps=2,
                        dpo_save_steps=2, dpo_global_batch_size=4, dpo_per_device_train_batch_size=4,
                        dpo_eval_fraction=0.2, dpo_logging_steps=1, dpo_max_length=64)
    m = run_dpo(cfg)["metrics"]
    assert m["steps"] == 2 and (m["pairs_train"], m["pairs_eval"]) == (8, 2)
    assert m["data"]["source"] == str(data) and len(m["data"]["hash"]) == 64


def test_dpo_without_sft_starts_from_the_base_target_and_needs_no_05(tiny):
    run = tiny["root"] / "run_no_sft"
    build_pairs(run, n_dpo=10)  # no 05_sft folder at all
    cfg = DPOStepConfig(run_dir=str(run), target_model=tiny["model"], dpo_init="base", dpo_max_steps=2,
                        dpo_save_steps=2, dpo_global_batch_size=4, dpo_per_device_train_batch_size=4,
                        dpo_eval_fraction=0.0, dpo_logging_steps=1, dpo_max_length=64)
    m = run_dpo(cfg)["metrics"]
    assert m["steps"] == 2 and m["reference"] == tiny["model"]
    assert not (run / "05_sft").exists() and (run / "06_dpo" / "model" / "model.safetensors").exists()
    with pytest.raises(Exception, match="dpo_init"):
        DPOStepConfig(run_dir=str(run), target_model=tiny["model"], dpo_init="sft_then_base")

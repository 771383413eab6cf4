"""accelerate launch: a 2-process CPU (gloo DDP) SFT run consumes the same examples per step as a 1-process run."""

import pytest
from test_train_sft import build_pairs, build_tiny_model

from fusechat_utils.train_sft import SFTStepConfig, run_sft
from fusechat_utils.train_launch import grad_accumulation, needs_launch, read_sample_logs


def test_accumulation_comes_from_the_global_batch_and_the_process_count():
    assert grad_accumulation(128, 4, 8) == 4
    assert grad_accumulation(128, 2, 8) == 8
    with pytest.raises(ValueError, match="128 is not divisible by per-device batch 3 x 8"):
        grad_accumulation(128, 3, 8)


def test_launch_is_needed_for_several_processes_or_a_non_single_config(monkeypatch):
    monkeypatch.delenv("FUSECHAT_LAUNCHED", raising=False)
    assert not needs_launch("params/accelerate/single.yaml", 1)
    assert needs_launch("params/accelerate/cpu_ddp.yaml", 2)
    assert needs_launch("params/accelerate/deepspeed_zero3.yaml", 1)
    monkeypatch.setenv("FUSECHAT_LAUNCHED", "1")
    assert not needs_launch("params/accelerate/cpu_ddp.yaml", 2)


@pytest.mark.slow
def test_two_cpu_processes_see_the_same_samples_per_step_as_one(tmp_path):
    model = build_tiny_model(tmp_path / "target")
    base = dict(target_model=model, sft_max_steps=6, sft_global_batch_size=8, sft_per_device_train_batch_size=4,
                sft_max_length=64, sft_save_steps=100, sft_logging_steps=1, sft_learning_rate=1e-3)
    runs = {}
    for n, conf in [(1, "single.yaml"), (2, "cpu_ddp.yaml")]:
        run = tmp_path / f"run{n}"
        build_pairs(run, n_sft=40)
        cfg = SFTStepConfig(run_dir=str(run), sft_num_processes=n, sft_accelerate_config=f"params/accelerate/{conf}",
                            **base)
        runs[n] = (run_sft(cfg)["metrics"], read_sample_logs(run / "05_sft" / "samples", accumulation=2 // n))
    (m1, steps1), (m2, steps2) = runs[1], runs[2]
    assert m2["num_processes"] == 2 and m1["num_processes"] == 1
    assert m1["steps"] == m2["steps"] == 6 and m1["samples_seen"] == m2["samples_seen"] == 48
    # the dataloader collates one batch ahead (accelerate's end-of-data lookahead): compare the 6 trained steps
    steps1, steps2 = steps1[:6], steps2[:6]
    assert len(steps2) == 6 and all(len(s) == 8 for s in steps1 + steps2)
    assert steps1 == steps2
    assert len(set().union(*steps1[:5])) == 40, "one epoch covers every example once"
    assert m2["train_loss_first"] == pytest.approx(m1["train_loss_first"], rel=1e-3)


def test_gpu_memory_estimate_shards_states_and_counts_the_reference():
    from fusechat_utils.train_launch import gpu_memory_estimate

    on8 = gpu_memory_estimate(8.03e9, 4096, 32, 128256, seqs=4, seq_len=2048, n_gpus=8)
    on4 = gpu_memory_estimate(8.03e9, 4096, 32, 128256, seqs=4, seq_len=2048, n_gpus=4)
    dpo = gpu_memory_estimate(8.03e9, 4096, 32, 128256, seqs=4, seq_len=2048, n_gpus=8, reference=True)
    assert on4["states_gib"] == pytest.approx(2 * on8["states_gib"], abs=0.2)
    assert dpo["states_gib"] == pytest.approx(on8["states_gib"] * 18 / 16, abs=0.2)
    assert on8["logits_gib"] == pytest.approx(4 * 2048 * 128256 * 10 / 2**30, abs=0.2)

"""Multi-node training under Slurm: accelerate's machine settings from Slurm's environment, one launch per node
through srun; 2 "nodes" x 1 process on localhost train as 1 node x 2 processes. Sharding configs save full models."""

import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest
import yaml
from test_train_sft import build_pairs, build_tiny_model

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.errors import UserError
from fusechat_utils.train_sft import SFTStepConfig, run_sft
from fusechat_utils.train_launch import (
    check_world_batch, machine_args, machine_rank, main_process_address, main_process_port, parse_nodelist,
    srun_command,
)

# Stands in for srun on a machine without Slurm: starts --ntasks copies of the command at once, each with the
# variables srun gives a task (SLURM_NODEID, SLURM_PROCID, SLURM_LOCALID), and exits with the worst status.
FAKE_SRUN = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
cut = next(i for i, a in enumerate(args) if not a.startswith("--"))
opts, cmd = args[:cut], args[cut:]
with open({log!r}, "a") as fh:
    fh.write(json.dumps(args) + "\\n")
ntasks = int(next(o.split("=", 1)[1] for o in opts if o.startswith("--ntasks=")))
procs = [subprocess.Popen(cmd, env={{**os.environ, "SLURM_NODEID": str(i), "SLURM_PROCID": str(i),
                                     "SLURM_LOCALID": "0"}}) for i in range(ntasks)]
sys.exit(max(p.wait() for p in procs))
"""


@pytest.mark.parametrize("nodelist, hosts", [
    ("gpu017", ["gpu017"]),
    ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
    ("gpu[08-11]", ["gpu08", "gpu09", "gpu10", "gpu11"]),
    ("a[1-2]-ib,b3", ["a1-ib", "a2-ib", "b3"]),
    ("rack[1-2]n[01-02]", ["rack1n01", "rack1n02", "rack2n01", "rack2n02"]),
    ("hpc-node9,hpc-node[10-11]", ["hpc-node9", "hpc-node10", "hpc-node11"]),
    ("127.0.0.[1-2]", ["127.0.0.1", "127.0.0.2"]),
])
def test_slurm_node_lists_expand_as_scontrol_does(nodelist, hosts):
    assert parse_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["gpu[01-x]", "gpu[01-03", "", "gpu[]"])
def test_an_unreadable_node_list_is_an_error_naming_it(bad):
    with pytest.raises(UserError, match="cannot read the Slurm node list"):
        parse_nodelist(bad)


def test_machine_settings_come_from_slurms_environment():
    env = {"SLURM_NNODES": "4", "SLURM_JOB_NODELIST": "gpu[12-15]", "SLURM_JOB_ID": "123457", "PATH": ""}
    assert machine_args("params/accelerate/deepspeed_zero3.yaml", env) == [
        "--num_machines", "4", "--main_process_ip", "gpu12", "--main_process_port", str(20000 + 123457 % 12000)]
    assert main_process_port({**env, "MASTER_PORT": "6000"}) == 6000
    assert main_process_address({"SLURM_NODELIST": "n3,n1"}) == "n3"
    assert machine_rank({"SLURM_NODEID": "3", "SLURM_PROCID": "3"}) == 3
    assert machine_rank({"SLURM_PROCID": "2"}) == 2
    with pytest.raises(UserError, match="SLURM_NODEID or SLURM_PROCID"):
        machine_rank({})


def test_one_node_or_no_slurm_keeps_the_single_machine_launch():
    args = machine_args("params/accelerate/cpu_ddp.yaml", {"SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "gpu01"})
    assert args[0] == "--main_process_port" and len(args) == 2  # a free local port, no machine settings
    assert "--num_machines" not in machine_args("params/accelerate/cpu_ddp.yaml", {})


def test_srun_starts_one_task_per_node_and_passes_the_cpus_on(tmp_path):
    fake = tmp_path / "srun"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    env = {"PATH": str(tmp_path), "SLURM_CPUS_PER_TASK": "96"}
    assert srun_command(4, env) == ["srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                                    "--export=ALL", "--cpus-per-task=96"]
    with pytest.raises(UserError, match="srun is not on PATH"):
        srun_command(4, {"PATH": str(tmp_path / "nowhere")})


def test_the_global_batch_must_split_over_all_nodes():
    cfg = SFTStepConfig(sft_global_batch_size=128, sft_per_device_train_batch_size=4, sft_num_processes=8)
    check_world_batch("05_sft", cfg, 8, 4)  # 128 = 4 x 32 GPUs x 1
    with pytest.raises(UserError, match=r"3 node\(s\) x 8 process\(es\).*'sft_global_batch_size'"):
        check_world_batch("05_sft", cfg, 8, 3)  # 96 GPUs do not divide 128


def test_sharding_configs_save_a_full_loadable_model():
    """FSDP: transformers' Trainer.save_model writes weights under FSDP only with FULL_STATE_DICT (with
    SHARDED_STATE_DICT it writes none, and 06/07 would find no model); ZeRO-3: zero3_save_16bit_model gathers the
    shards into one 16-bit state dict. Neither can run on CPU: accelerate 1.15 turns an FSDP config into plain
    gloo DDP (MULTI_CPU) without a GPU, and DeepSpeed needs CUDA."""
    fsdp = yaml.safe_load((PROJECT_ROOT / "params/accelerate/fsdp.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP"
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    zero3 = yaml.safe_load((PROJECT_ROOT / "params/accelerate/deepspeed_zero3.yaml").read_text())
    assert zero3["deepspeed_config"]["zero_stage"] == 3 and zero3["deepspeed_config"]["zero3_save_16bit_model"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_of_one_process_train_as_one_node_of_two(tmp_path, monkeypatch):
    """Two 'nodes' on localhost (gloo), started at once by srun with machine ranks 0 and 1 and the same main
    address and port, log the same losses step by step as one node with two processes."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # both runs: one thread per rank (accelerate would pick per node)
    model = build_tiny_model(tmp_path / "target")
    base = dict(target_model=model, sft_max_steps=5, sft_global_batch_size=8, sft_per_device_train_batch_size=4,
                sft_max_length=64, sft_save_steps=100, sft_logging_steps=1, sft_learning_rate=1e-3,
                sft_accelerate_config="params/accelerate/cpu_ddp.yaml")
    logs = {}
    for name, per_node in [("one_node", 2), ("two_nodes", 1)]:
        run = tmp_path / name
        build_pairs(run, n_sft=40)
        if name == "two_nodes":
            bin_dir, srun_log = tmp_path / "bin", tmp_path / "srun_calls.jsonl"
            bin_dir.mkdir()
            (bin_dir / "srun").write_text(FAKE_SRUN.format(python=sys.executable, log=str(srun_log)))
            (bin_dir / "srun").chmod(stat.S_IRWXU)
            monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
            monkeypatch.setenv("SLURM_NNODES", "2")
            monkeypatch.setenv("SLURM_JOB_NODELIST", "127.0.0.[1-2]")
            monkeypatch.setenv("SLURM_JOB_ID", "4242")
            monkeypatch.setenv("MASTER_PORT", str(_free_port()))
        metrics = run_sft(SFTStepConfig(run_dir=str(run), sft_num_processes=per_node, **base))["metrics"]
        assert metrics["num_processes"] == 2 and metrics["steps"] == 5
        logs[name] = json.loads((run / "05_sft" / "log_history.json").read_text())
    (call,) = [json.loads(line) for line in srun_log.read_text().splitlines()]
    assert call[:4] == ["--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    launch = call[call.index("fusechat_utils.train_launch") + 1:]
    assert launch[launch.index("--num_machines") + 1] == "2" and launch[launch.index("--num_processes") + 1] == "2"
    assert launch[launch.index("--main_process_ip") + 1] == "127.0.0.1"
    losses = {name: [(r["step"], r["loss"]) for r in log if "loss" in r] for name, log in logs.items()}
    assert [s for s, _ in losses["one_node"]] == [1, 2, 3, 4, 5]
    assert [s for s, _ in losses["two_nodes"]] == [1, 2, 3, 4, 5]
    for (_, one), (_, two) in zip(losses["one_node"], losses["two_nodes"]):
        assert two == pytest.approx(one, rel=1e-6)
    assert losses["one_node"][-1][1] < losses["one_node"][0][1]  # it trained: the loss fell
    assert Path(tmp_path / "two_nodes" / "05_sft" / "model" / "model.safetensors").is_file()


def test_the_sbatch_template_runs_05_and_06_of_the_profile_once(tmp_path):
    """The template's #SBATCH lines come before any command (sbatch stops reading them there), ask one task a
    node, and its body runs one `fusechat run --steps 05-06` with the profile and the options passed on."""
    import subprocess

    script = PROJECT_ROOT / "params/accelerate/train.sbatch"
    lines = script.read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert all(lines.index(d) < first_command for d in directives)
    assert "#SBATCH --ntasks-per-node=1" in directives
    fake = tmp_path / "fusechat"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'args'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "FUSECHAT": str(fake), "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_NNODES": "4",
           "SLURM_JOB_NODELIST": "gpu[01-04]"}
    out = subprocess.run(["bash", str(script), "llama3.1-8b", "--set", "seed=1"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "4 node(s) [gpu[01-04]], profile llama3.1-8b" in out.stdout
    assert (tmp_path / "args").read_text().split() == ["run", "--profile", "llama3.1-8b", "--steps", "05-06",
                                                       "--set", "seed=1"]
    missing = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "usage: sbatch" in missing.stderr

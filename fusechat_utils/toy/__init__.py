"""The toy world: tiny heterogeneous source models, a weak target, a reward model, fixture datasets in the real
schemas of FuseChat-3.0's 8 source datasets, and held-out toy benchmarks; built offline on a laptop CPU.

Usage:
    fusechat toy-world                     # or: from fusechat_utils.toy import build; build()

Cached by a hash of its recipe (every size, seed and step count plus the toy package's source): a rebuild
happens only when that changes. Models are saved with `save_pretrained` and loaded by the pipeline through the
same `from_pretrained` path as hub ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fusechat_utils.io import hash_obj, read_json, write_json

from fusechat_utils.toy.tasks import PERSONAS

STRENGTHS = {name: persona["strong"] for name, persona in PERSONAS.items()}


@dataclasses.dataclass(frozen=True)
class Recipe:
    seed: int = 0
    source_steps: int = 350
    math_source_steps: int = 800  # arithmetic is learned after a phase transition (with the general domain beside it:
    # math 0.53 at 600 steps, 0.90 at 800)
    source_lr: float = 3e-3
    batch_size: int = 64
    math_source_batch_size: int = 32  # reached the phase transition in as many steps as bs 64, at half the cost
    strong_examples: int = 1500  # a source's pretraining set: its strong domain ...
    weak_examples: int = 40  # ... and a little of every other domain
    general_examples: int = 150  # every source follows instructions a little, with its blind spot (tasks.PERSONAS);
    # more costs the specialists their domain (code 0.88 / 0.52 / 0.37 with 40 / 300 / 600 general examples)
    error_rate: float = 0.05  # share of a source's strong-domain training answers that are near misses
    reward_style_bias: float = 0.2  # share of the RM's general pairs that rank the verbose style over another
    target_steps: int = 60  # h128 target: math 0, Chinese 0.07 at 60 steps (0.12 / 0.98 at 150): weak, as meant
    target_batch_size: int = 64
    target_examples: int = 200  # per family: the target sees every domain, briefly
    reward_steps: int = 500  # general pairwise accuracy 0.78 at 300 steps, 0.85 at 500
    reward_lr: float = 1e-3
    reward_pairs: int = 600  # per family
    eval_examples: int = 60  # per family, held out, for the manifest's accuracy table
    bench_examples: int = 200  # per family, held out: the toy benchmarks of 07_eval
    fixture_rows: int = 600  # per dataset (before the rows meant to be dropped); the general datasets' 300-row caps
    # (params/toy/01_prompts.yaml) need it: with 100 per dataset the target's SFT on general was unstable
    threads: int = 1  # per training process; two run side by side on a 2-core machine

    def schedule(self, kind: str, strong: str | None) -> tuple[int, int]:
        """(steps, batch size) of one model: `kind` is source | target | reward, `strong` a source's domain."""
        if kind == "target":
            return self.target_steps, self.target_batch_size
        if kind == "reward":
            return self.reward_steps, 32
        if strong == "math":
            return self.math_source_steps, self.math_source_batch_size
        return self.source_steps, self.batch_size


def code_version() -> str:
    """Hash of the toy package's source: a change in how the world is built invalidates the cache (diagnostics.py
    only reads runs, so editing it does not)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(__file__).parent.glob("*.py") if p.name != "diagnostics.py"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def recipe_hash(recipe: Recipe) -> str:
    return hash_obj({"recipe": dataclasses.asdict(recipe), "code": code_version()})[:16]


def _jobs(recipe: Recipe, out: Path) -> list[dict]:
    jobs = [("source", name, strong) for name, strong in STRENGTHS.items()] + [("target", "target", None),
                                                                                ("reward", "reward", None)]
    return [{"kind": kind, "spec": name, "strong": strong, "recipe": dataclasses.asdict(recipe),
             "out_dir": str(out / "models" / name)} for kind, name, strong in jobs]


def _cost(job: dict) -> float:
    """Rough relative training cost: steps times batch times width squared."""
    from fusechat_utils.toy.nets import SPECS

    steps, batch = Recipe(**job["recipe"]).schedule(job["kind"], job["strong"])
    return steps * batch * (SPECS[job["spec"]].hidden / 64) ** 2


def _lanes(jobs: list[dict], workers: int) -> list[list[dict]]:
    """Longest job first onto the least-loaded lane; one process per lane imports torch once for all its jobs."""
    lanes: list[list[dict]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for job in sorted(jobs, key=_cost, reverse=True):
        i = load.index(min(load))
        lanes[i].append(job)
        load[i] += _cost(job)
    return [lane for lane in lanes if lane]


def _train_all(jobs: list[dict], workers: int = 2) -> dict[str, dict]:
    """Train every model in `workers` processes at once; a failing job stops the build and shows its log."""
    running = []
    for n, lane in enumerate(_lanes(jobs, workers)):
        paths = []
        for job in lane:
            write_json(job["out_dir"] + ".job.json", job)
            paths.append(job["out_dir"] + ".job.json")
        log_path = Path(lane[0]["out_dir"]).parent / f"lane{n}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "fusechat_utils.toy.worker", *paths], stdout=log,
                                    stderr=subprocess.STDOUT)
        running.append((lane, proc, log_path))
    while any(proc.poll() is None for _, proc, _ in running):
        time.sleep(0.2)
        for lane, proc, log_path in running:
            if proc.poll():
                for _, other, _ in running:
                    other.kill()
                failed = next(j["spec"] for j in lane if not Path(j["out_dir"] + ".info.json").exists())
                raise RuntimeError(f"toy world: building {failed} failed ({log_path}):\n{log_path.read_text()[-3000:]}")
    return {job["spec"]: read_json(job["out_dir"] + ".info.json") for job in jobs}


def build(out_dir: str | Path = "outputs/toy_world", force: bool = False, recipe: Recipe | None = None) -> Path:
    """Build the toy world into out_dir unless one with the same recipe hash is already there."""
    recipe = recipe or Recipe()
    out = Path(out_dir)
    wanted = recipe_hash(recipe)
    manifest = out / "manifest.json"
    if not force and manifest.is_file() and read_json(manifest).get("recipe_hash") == wanted:
        return out
    started = time.time()
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    from fusechat_utils.toy.fixtures import write_benchmarks, write_fixtures

    fixtures = write_fixtures(tmp / "fixtures", recipe)
    write_benchmarks(tmp / "benchmarks", recipe)
    (tmp / "models").mkdir(parents=True)
    models = _train_all(_jobs(recipe, tmp))
    for leftover in (tmp / "models").glob("*.*"):  # job files, logs, trainer scratch
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    write_json(tmp / "manifest.json", {"recipe": dataclasses.asdict(recipe), "recipe_hash": wanted,
                                       "personas": PERSONAS, "models": models, "fixtures": fixtures,
                                       "build_s": round(time.time() - started, 1)})
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # a killed build never leaves a half world that looks finished
    return out

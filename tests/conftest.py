"""Shared fixtures. Keep this small: each fixture here is used by several test files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _share_the_cores_between_xdist_workers() -> None:
    """Under `pytest -n N` each worker, and every promptopt process it starts, would
    take all the cores for torch: N workers would then wait on each other's threads.
    Each gets its share instead (set before torch is imported; a thread count the
    user set still wins)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if workers > 1:
        share = max(1, len(os.sched_getaffinity(0)) // workers)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, str(share))


_share_the_cores_between_xdist_workers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` is one name for the inner loop to skip: every test that runs the real
    model or starts the server (`pytest -m "not slow"`, about 3 minutes)."""
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("server"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real benchmark data, exported as PROMPTOPT_DATA_DIR.

    An existing PROMPTOPT_DATA_DIR wins (CI sets it, relative to the repo root);
    otherwise the shared copy next to the repository is used. Missing data fails
    loudly instead of skipping, so data-backed tests can never pass vacuously.
    """
    configured = os.environ.get("PROMPTOPT_DATA_DIR")
    path = (REPO_ROOT / configured).resolve() if configured else SHARED_DATA.resolve()
    if not path.is_dir():
        pytest.fail(f"benchmark data not found at {path}: set PROMPTOPT_DATA_DIR")
    monkeypatch.setenv("PROMPTOPT_DATA_DIR", str(path))
    return path


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh call cache per test that still reuses the converted embedded model."""
    from promptopt.core.paths import cache_root

    models = cache_root() / "models"
    models.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "cache"
    root.mkdir()
    (root / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(root))
    return root

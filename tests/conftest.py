"""Shared test set-up: every test gets its own data home and runs folder; real data is optional."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EXOML_SHARED", ROOT.parent / "shared" / "data"))
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path, monkeypatch):
    """No test touches the user's cache or another test's: EXOML_DATA points into tmp_path."""
    home = tmp_path / "exoml-data"
    monkeypatch.setenv("EXOML_DATA", str(home))
    monkeypatch.delenv("EXOML_DATA_MIRROR", raising=False)
    from exoml import data
    data._loaded.clear()
    yield home
    data._loaded.clear()


def shared(*parts: str) -> Path:
    """A path inside ../shared/data, or skip the test when the real data is not there."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not present: {p}")
    return p

"""Iris (Fisher, 1936): 150 flowers, 4 measurements in cm, 3 species (50 each).

Loader returns a Bunch:
    frame          pandas DataFrame (150, 5): the 4 float64 feature columns
                   ("sepal length (cm)", ...) + "target" int64, like scikit-learn's as_frame
    target         int64 array (150,), 0..2 (same values as frame["target"])
    classes        ["setosa", "versicolor", "virginica"]
    feature_names  the 4 feature column names

The data is scikit-learn's bundled copy (no download: files=[]); `build` ignores its paths.
It is built into the cache on first load, like every other dataset, so all load the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .core import Dataset, DataError


def _build(paths: list[Path], subset: bool) -> tuple[dict, dict]:
    from sklearn.datasets import load_iris
    raw = load_iris()
    x, y = np.asarray(raw.data, dtype=np.float64), np.asarray(raw.target, dtype=np.int64)
    names = [str(n) for n in raw.feature_names]
    classes = [str(c) for c in raw.target_names]
    # Guard against a changed bundled copy rather than trusting it blindly.
    if x.shape != (150, 4) or len(classes) != 3 or np.bincount(y, minlength=3).tolist() != [50, 50, 50]:
        raise DataError(f"iris: scikit-learn's bundled copy looks wrong (shape {x.shape}, {len(classes)} classes)")
    arrays = {f"x{j}": np.ascontiguousarray(x[:, j]) for j in range(4)} | {"target": y}
    return arrays, {"counts": {"rows": len(y)}, "feature_names": names, "classes": classes,
                    "source": ["sklearn.datasets.load_iris"]}


def _load(arrays: dict, meta: dict) -> Bunch:
    import pandas as pd
    names = list(meta["feature_names"])
    frame = pd.DataFrame({n: arrays[f"x{j}"] for j, n in enumerate(names)} | {"target": arrays["target"]})
    return Bunch(frame=frame, target=arrays["target"], classes=list(meta["classes"]), feature_names=names)


IRIS = Dataset(
    name="iris", title="Iris (Fisher 1936)", homepage="https://archive.ics.uci.edu/dataset/53/iris",
    files=[], counts={"rows": 150}, build=_build, load=_load,
    license="CC BY 4.0 (UCI); bundled with scikit-learn (BSD-3-Clause)",
    note="bundled with scikit-learn: nothing to download")

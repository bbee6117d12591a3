"""Datasets: official download, import of local copies, a validated processed cache, loaders.

    from exoml import data
    mnist = data.load("mnist")        # Bunch: x_train uint8 (60000, 28, 28), y_train int64, ...
    data.import_("cifar10", ["../shared/data/cifar10"])

Each dataset's module documents what its loader returns (dtypes and shapes).
"""
from __future__ import annotations

from pathlib import Path

from .core import DataError, Dataset, check_counts, data_home, download, load_cache, save_cache
from . import boston, cifar, electricity, imdb, iris, kddcup, mnist

DATASETS: dict[str, Dataset] = {ds.name: ds for ds in (
    mnist.MNIST, mnist.FASHION, cifar.CIFAR10, cifar.CIFAR100, imdb.IMDB, kddcup.KDDCUP,
    boston.BOSTON, electricity.ELECTRICITY, iris.IRIS)}

_loaded: dict[str, object] = {}


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}: choose from {', '.join(DATASETS)}") from None


def import_(name: str, paths: list[str | Path], subset: bool = False) -> dict:
    """Parse and validate local files (official layout or ../shared/data layout) into the cache."""
    ds = get(name)
    arrays, meta = ds.build([Path(p) for p in paths], subset)
    check_counts(ds, meta.get("counts", {}), subset)
    counts = meta.get("counts", {})
    meta["subset"] = any(counts.get(k) != v for k, v in ds.counts.items())
    save_cache(ds, arrays, meta)
    _loaded.pop(name, None)
    return meta


def fetch(name: str, progress: bool = True) -> dict:
    """Download the official files (hash-checked) and build the cache from them."""
    ds = get(name)
    paths = [download(ds, rf, progress) for rf in ds.files if not rf.optional]  # none for Iris (bundled)
    return import_(name, paths)


def verify(name: str) -> dict:
    """Reload the cache and check it against the official counts; report raw file hashes."""
    from .core import file_hash_ok
    ds = get(name)
    arrays, meta = load_cache(ds, check_hashes=True)
    check_counts(ds, meta.get("counts", {}), meta.get("subset", False))
    ds.load(arrays, meta)  # the loader's own checks
    raw = {}
    for rf in ds.files:
        p = ds.root / "raw" / rf.name
        if p.exists():
            raw[rf.name] = "ok" if file_hash_ok(p, rf.hash) else "CHECKSUM MISMATCH"
    return {"dataset": name, "counts": meta.get("counts"), "subset": meta.get("subset", False),
            "source": meta.get("source"), "raw_files": raw}


def load(name: str):
    """The dataset as the module documents it; raises DataError if it is not cached yet."""
    if name not in _loaded:
        ds = get(name)
        if not ds.files and not ds.is_cached():  # bundled dataset: build on first use
            import_(name, [])
        arrays, meta = load_cache(ds)
        _loaded[name] = ds.load(arrays, meta)
    return _loaded[name]


def default_local_paths(name: str, root: Path) -> list[Path]:
    """Where a dataset sits inside a local copy laid out like ../shared/data."""
    ds = get(name)
    found = [root / d for d in ds.shared_dirs if (root / d).exists()]
    found += [Path(d) for d in ds.extra.get("system_dirs", ()) if Path(d).exists()]
    return found[:1] if found else []

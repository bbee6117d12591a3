"""MNIST and Fashion-MNIST: 28x28 grey images in the IDX format, 60,000 train + 10,000 test.

Loader returns a Bunch:
    x_train uint8 (60000, 28, 28), y_train int64 (60000,), x_test uint8 (10000, 28, 28),
    y_test int64 (10000,), classes list[str] (10 names).

IDX: a 4-byte magic (0, 0, dtype code 0x08 = uint8, number of dimensions), then one
big-endian uint32 per dimension, then the data. We check the magic, that the declared
size is plausible before allocating, and that the payload has exactly that many bytes.
Files may be gzipped (official) or raw, named `train-images-idx3-ubyte` or
`train-images.idx3-ubyte` (the two spellings in circulation).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .core import Dataset, DataError, RemoteFile, expand, find_file, read_bytes

MAX_IDX_BYTES = 200_000_000  # the largest official IDX file is 47 MB


def parse_idx(data: bytes, name: str = "idx", ndim: int | None = None) -> np.ndarray:
    if not data:
        raise DataError(f"{name}: the file is empty")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{name}: IDX element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    nd = data[3]
    if ndim is not None and nd != ndim:
        raise DataError(f"{name}: expected {ndim} dimensions, header says {nd}")
    if len(data) < 4 + 4 * nd:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd))
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if size > MAX_IDX_BYTES:
        raise DataError(f"{name}: declared size {shape} is implausibly large")
    payload = memoryview(data)[4 + 4 * nd:]
    if len(payload) != size:
        raise DataError(f"{name}: header declares {size} bytes of data, file has {len(payload)} (truncated or corrupt)")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()


def _names(stem: str) -> str:
    # train-images-idx3-ubyte, train-images.idx3-ubyte, optional .gz
    a, b = stem.split("|")
    return rf"{a}[-.]{b}(\.gz)?"


def _build(paths: list[Path], subset: bool, classes: list[str]) -> tuple[dict, dict]:
    files = expand(paths)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_path = find_file(files, _names(f"{prefix}-images|idx3-ubyte"), f"{prefix} images (IDX)")
        lab_path = find_file(files, _names(f"{prefix}-labels|idx1-ubyte"), f"{prefix} labels (IDX)")
        x = parse_idx(read_bytes(img_path, MAX_IDX_BYTES + 64), img_path.name, ndim=3)
        y = parse_idx(read_bytes(lab_path, MAX_IDX_BYTES + 64), lab_path.name, ndim=1).astype(np.int64)
        if x.shape[1:] != (28, 28):
            raise DataError(f"{img_path.name}: images are {x.shape[1:]}, expected 28x28")
        if len(x) != len(y):
            raise DataError(f"{split}: {len(x)} images but {len(y)} labels")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{lab_path.name}: labels outside 0..{len(classes) - 1}")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    meta = {"counts": {"train": len(arrays["y_train"]), "test": len(arrays["y_test"])},
            "classes": classes, "source": [str(p) for p in paths]}
    return arrays, meta


def _load(arrays: dict, meta: dict) -> Bunch:
    return Bunch(**{k: arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")}, classes=meta["classes"])


MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# Hashes: sha256 of the official .gz files, as pinned by tensorflow-datasets (url_checksums/mnist.txt,
# fashion_mnist.txt) and keras. Debian re-wrapped Fashion-MNIST's gzip headers, so import that copy.
_MNIST_BASE = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # the original host yann.lecun.com refuses bots
_FASHION_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _files(base: str, hashes: dict[str, str | None]) -> list[RemoteFile]:
    return [RemoteFile(name, base + name, hashes[name]) for name in hashes]


MNIST = Dataset(
    name="mnist", title="MNIST handwritten digits", homepage="http://yann.lecun.com/exdb/mnist/",
    files=_files(_MNIST_BASE, {
        "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}),
    counts={"train": 60000, "test": 10000},
    build=lambda paths, subset: _build(paths, subset, MNIST_CLASSES), load=_load,
    shared_dirs=("mnist",), license="CC BY-SA 3.0 (LeCun, Cortes, Burges)")

FASHION = Dataset(
    name="fashion-mnist", title="Fashion-MNIST (Zalando)", homepage="https://github.com/zalandoresearch/fashion-mnist",
    files=_files(_FASHION_BASE, {
        "train-images-idx3-ubyte.gz": "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"}),
    counts={"train": 60000, "test": 10000},
    build=lambda paths, subset: _build(paths, subset, FASHION_CLASSES), load=_load,
    shared_dirs=("fashion-mnist",), license="MIT",
    note="Debian: apt-get install dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist)",
    extra={"system_dirs": ("/usr/share/datasets/fashion-mnist",)})

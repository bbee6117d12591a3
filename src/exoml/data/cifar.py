"""CIFAR-10 and CIFAR-100: 32x32 colour images, 50,000 train + 10,000 test.

Loader returns a Bunch:
    x_train uint8 (50000, 32, 32, 3) HWC, RGB;  y_train int64 (50000,)
    x_test  uint8 (10000, 32, 32, 3);           y_test  int64 (10000,)
    classes list[str]: 10 names (CIFAR-10) or the 100 fine names, index = label
CIFAR-100 adds y_train_coarse, y_test_coarse int64 and coarse_classes (20 names), the
coarse label following from the official fine -> coarse mapping (SUPERCLASSES).

Two layouts are imported (files or folders, mixed freely within one layout):
  * the official *binary* version (cifar-10-binary.tar.gz / cifar-100-binary.tar.gz, or
    the .bin files extracted from it). A record is 1 label byte (CIFAR-100: coarse byte,
    fine byte) + 3072 pixel bytes: the R, G, B planes, each 32x32 row-major.
    data_batch_1..5.bin / train.bin = train, test_batch.bin / test.bin = test.
  * an image folder: .../{train,test}/<official class name>/<file>.webp|png|jpg, loose or
    inside tar archives (the ../shared/data shards). Rows are grouped by class, sorted by
    file name within a class, so the order is deterministic but not the official one.
The pickled "python version" is refused: unpickling a downloaded file can run code.
"""
from __future__ import annotations

import io
import os
import signal
import sys
import re
from pathlib import Path, PurePath

import numpy as np
from sklearn.utils import Bunch

from ..toolkit.signals import deferred_interrupts
from .core import Dataset, DataError, RemoteFile, expand, iter_tar

PIXELS = 32 * 32 * 3
IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg"}
TAR_NAME = re.compile(r".*\.(tar|tgz|tar\.gz|tar\.xz|tar\.bz2)")
PICKLED = re.compile(r"cifar-10(0-python|-python|-batches-py)(\.tar\.gz)?|data_batch_\d|test_batch|batches\.meta")
POOL_MIN = 4000   # below this many images, starting worker processes costs more than it saves
CHUNK = 1000
POOL_CLOSER = "exoml-cifar-pool-close"  # the thread that ends the pool (named for tests)
TERMINATE_WAIT = 5.0  # s: how long closing the decoding pool may take before its workers are killed
OFFICIAL = {"train": 50000, "test": 10000}  # rows per split, in both datasets; classes are balanced

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

# The official superclasses (cifar.html), coarse label = position in this (alphabetical) table.
SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
COARSE_CLASSES = list(SUPERCLASSES)
FINE_CLASSES = sorted(f for fines in SUPERCLASSES.values() for f in fines)  # official fine index order
# The 100-entry fine -> coarse mapping: COARSE_OF_FINE[fine label] = coarse label.
COARSE_OF_FINE = np.array([next(c for c, (_, fines) in enumerate(SUPERCLASSES.items()) if f in fines)
                           for f in FINE_CLASSES], dtype=np.int64)


# ---------------------------------------------------------------- image decoding ------

def _decode_chunk(items: list[tuple[str, bytes]]) -> np.ndarray:
    """Decode (name, encoded bytes) pairs into uint8 (n, 32, 32, 3); runs in worker processes."""
    from PIL import Image, UnidentifiedImageError
    out = np.empty((len(items), 32, 32, 3), np.uint8)
    for i, (name, blob) in enumerate(items):
        try:  # from bytes in memory; naming the formats skips Pillow's probing of every plugin
            with Image.open(io.BytesIO(blob), formats=("WEBP", "PNG", "JPEG")) as im:
                if im.size != (32, 32):
                    raise DataError(f"{name}: image is {im.size[0]}x{im.size[1]}, CIFAR images are 32x32")
                im = im if im.mode == "RGB" else im.convert("RGB")
                out[i] = np.frombuffer(im.tobytes(), np.uint8).reshape(32, 32, 3)
        except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
            raise DataError(f"{name}: not a readable image (no WebP, PNG or JPEG data)") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None
    return out


def _quiet_worker():
    """Workers inherit the parent's signal handlers; restore SIGTERM's default so that terminating
    the pool ends them at once, and ignore Ctrl-C, which the parent answers between two chunks."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent
    if sys.platform.startswith("linux"):
        # a worker ends with the importing process however that ends (a kill, a signal during its
        # shutdown), instead of waiting forever on a queue nobody feeds, holding the caller's pipes
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class _Decoder:
    """Decodes images in chunks while the archives are still being read: Pillow takes ~0.2 ms a
    WebP (~10 s for all of CIFAR on one core), so large imports use a pool of worker processes."""

    def __init__(self, stop_asked=lambda: False):
        self.pending, self.parts, self.pool, self.n, self.workers = [], [], None, 0, 0
        self.stop_asked = stop_asked  # Ctrl-C / SIGTERM: checked between chunks, never inside the pool's locks

    def add(self, name: str, blob: bytes) -> int:
        self.pending.append((name, blob))
        self.n += 1
        if len(self.pending) >= CHUNK:
            if self.pool is None and self.n >= POOL_MIN and (os.cpu_count() or 1) > 1:
                import multiprocessing
                self.workers = min(8, os.cpu_count() or 1)
                self.pool = multiprocessing.Pool(self.workers, initializer=_quiet_worker)
            self._flush()
        return self.n - 1

    def _flush(self):
        if self.pending:
            chunk, self.pending = self.pending, []
            if self.pool:
                # At most one chunk per worker in flight: a new chunk goes out only when a worker is
                # free to read it, so the pool's task thread is never left blocked writing a chunk
                # into a full pipe (where Pool.terminate can wait for it forever), and the chunks
                # read ahead of the decoding do not pile up in memory.
                while (busy := [p for p in self.parts if hasattr(p, "ready") and not p.ready()]) \
                        and len(busy) >= self.workers:
                    self.check()
                    busy[0].wait(0.05)
                self.parts.append(self.pool.apply_async(_decode_chunk, (chunk,)))
            else:
                self.parts.append(_decode_chunk(chunk))

    def result(self) -> np.ndarray:
        self._flush()
        parts, p = [], None
        try:
            for p in self.parts:
                while hasattr(p, "ready") and not p.ready():
                    self.check()
                    p.wait(0.2)
                parts.append(p.get() if hasattr(p, "get") else p)
        finally:
            p = None  # a stop's traceback keeps this frame: it must not keep the pool alive (see close)
        return np.concatenate(parts) if parts else np.empty((0, 32, 32, 3), np.uint8)

    def check(self) -> None:
        """Stop here if a stop was asked (the caller's finally closes the pool)."""
        if self.stop_asked():
            raise KeyboardInterrupt

    def close(self):
        """Called inside the deferred-interrupt block: the pool is ended and dropped there, so that its
        __del__ never runs where a signal handler may raise (it would print 'Exception ignored')."""
        if self.pool:
            import multiprocessing
            import threading
            pool, self.pool, self.parts = self.pool, None, []  # (each pending result holds the pool too)
            # Pool.terminate joins the pool's task thread, which a signal can catch in the middle
            # of writing a chunk nobody will read (a CPython race, rare but seen): give it a few
            # seconds, then end the workers here; the stuck thread is a daemon and dies with us.
            stopper = threading.Thread(target=pool.terminate, name=POOL_CLOSER, daemon=True)
            stopper.start()
            stopper.join(TERMINATE_WAIT)
            if stopper.is_alive():
                for worker in multiprocessing.active_children():
                    worker.kill()
                    worker.join()
            else:
                pool.join()
            del pool
            import gc
            gc.collect()  # results still in the pool's cache form a cycle with it: finalise it here


# ---------------------------------------------------------------- build ---------------

def _parse_bin(data: bytes, name: str, hundred: bool) -> tuple[np.ndarray, np.ndarray]:
    """Binary records -> (x uint8 (n,32,32,3), fine/only labels int64); checks size and labels."""
    nlab = 2 if hundred else 1
    rec = nlab + PIXELS
    if not data or len(data) % rec:
        raise DataError(f"{name}: {len(data)} bytes is not a whole number of {rec}-byte CIFAR-"
                        f"{100 if hundred else 10} records (truncated or wrong file)")
    a = np.frombuffer(data, np.uint8).reshape(-1, rec)
    y = a[:, nlab - 1].astype(np.int64)
    if y.max() >= (100 if hundred else 10):
        raise DataError(f"{name}: label {y.max()} out of range")
    if hundred and (bad := np.flatnonzero(a[:, 0] != COARSE_OF_FINE[y])).size:
        i = int(bad[0])
        raise DataError(f"{name}: record {i} has coarse label {a[i, 0]} but fine class "
                        f"{FINE_CLASSES[y[i]]!r} belongs to {COARSE_OF_FINE[y[i]]}")
    # planes R, G, B of 32x32 each (CHW) -> HWC
    x = np.ascontiguousarray(a[:, nlab:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, y


def _check_names(text: bytes, name: str, want: list[str]) -> None:
    got = text.decode("utf-8", "replace").split()
    if got != want:
        raise DataError(f"{name}: class names {got[:3]}... differ from the official {want[:3]}...")


def _build(paths: list[Path], subset: bool, hundred: bool) -> tuple[dict, dict]:
    ds, classes = ("cifar100", FINE_CLASSES) if hundred else ("cifar10", CIFAR10_CLASSES)
    index = {c: i for i, c in enumerate(classes)}
    train_bins = ["train.bin"] if hundred else [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_bins = ["test.bin"] if hundred else ["test_batch.bin"]
    names_files = ({"fine_label_names.txt": FINE_CLASSES, "coarse_label_names.txt": COARSE_CLASSES}
                   if hundred else {"batches.meta.txt": CIFAR10_CLASSES})
    bins: dict[str, bytes] = {}
    keys: dict[str, list[tuple[int, str, int]]] = {"train": [], "test": []}  # (class, file, decoded row)
    seen: set[tuple[str, str, str]] = set()
    decoder = _Decoder()

    def take(member: PurePath, read, where: str) -> None:
        decoder.check()
        if any(PICKLED.fullmatch(part) for part in member.parts):
            raise DataError(f"{where}: the pickled CIFAR 'python version' is never unpickled (it can run "
                            "code); use the binary version (cifar-*-binary.tar.gz) or an image-folder layout")
        if member.name in names_files:
            _check_names(read(), where, names_files[member.name])
        elif member.name in train_bins + test_bins:
            data = read()
            if bins.setdefault(member.name, data) != data:
                raise DataError(f"{where}: two different copies of {member.name}")
        elif member.suffix.lower() in IMAGE_SUFFIXES:
            split, cls = (member.parts[-3:-1] if len(member.parts) >= 3 else ("", ""))
            if split not in keys:
                raise DataError(f"{where}: images must sit in {{train,test}}/<class>/, found {member}")
            if cls not in index:
                raise DataError(f"{where}: {cls!r} is not a {ds} class name (folder of {member.name})")
            if (split, cls, member.name) in seen:
                raise DataError(f"{where}: duplicate image {split}/{cls}/{member.name}")
            seen.add((split, cls, member.name))
            keys[split].append((index[cls], member.name, decoder.add(where, read())))
        # anything else (readme.html, SHA256SUMS, ...) is not part of the data

    with deferred_interrupts() as stop_asked:  # Ctrl-C stops between two members, the old cache kept
        decoder.stop_asked = stop_asked
        try:
            for path in expand(paths, max_depth=4):
                if TAR_NAME.fullmatch(path.name) and not PICKLED.fullmatch(path.name):
                    for member, blob in iter_tar(path):
                        take(member, lambda blob=blob: blob, f"{path.name}:{member}")
                else:  # (a pickled archive is refused by name, before it is opened)
                    take(path, path.read_bytes, str(path))
            images = decoder.result()
        finally:
            decoder.close()

    if bins and seen:
        raise DataError(f"{ds}: found both binary batches and image folders; import one layout at a time")
    arrays, counts = {}, {}
    for split, wanted in (("train", train_bins), ("test", test_bins)):
        if bins:
            missing = [b for b in wanted if b not in bins]
            if missing and not subset:
                raise DataError(f"{ds}: missing binary batch {missing[0]} (use --subset for a partial copy)")
            parts = [_parse_bin(bins[b], b, hundred) for b in wanted if b in bins]
            x = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, 32, 32, 3), np.uint8)
            y = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        elif seen:
            order = sorted(keys[split])
            x, y = images[[k[2] for k in order]], np.array([k[0] for k in order], np.int64)
        else:
            raise DataError(f"{ds}: no CIFAR data in {', '.join(map(str, paths))}: expected the binary "
                            "version (tar.gz or .bin files) or {train,test}/<class>/ image folders")
        want, per_class = OFFICIAL[split] // len(classes), np.bincount(y, minlength=len(classes))
        if not subset and (bad := np.flatnonzero(per_class != want)).size:
            c = bad[np.argmin(per_class[bad])]  # a missing class first: the likeliest mistake
            raise DataError(f"{ds}: {split} has {per_class[c]} images of {classes[c]!r}, the official "
                            f"dataset has {want} (use --subset to import a partial copy on purpose)")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        if hundred:
            arrays[f"y_{split}_coarse"] = COARSE_OF_FINE[y]
        counts[split] = len(y)
    meta = {"counts": counts, "classes": classes, "layout": "binary" if bins else "image-folder",
            "source": [str(p) for p in paths]}
    if hundred:
        meta["coarse_classes"] = COARSE_CLASSES
    return arrays, meta


def _load(arrays: dict, meta: dict) -> Bunch:
    keys = [k for k in ("x_train", "y_train", "x_test", "y_test", "y_train_coarse", "y_test_coarse") if k in arrays]
    extra = {"coarse_classes": meta["coarse_classes"]} if "coarse_classes" in meta else {}
    return Bunch(**{k: arrays[k] for k in keys}, classes=meta["classes"], **extra)


# sha256 and sizes as pinned by tensorflow-datasets (url_checksums/cifar10.txt, cifar100.txt).
_BASE = "https://www.cs.toronto.edu/~kriz/"
_NOTE = "binary version only; the pickled python version is refused (unpickling can run code)"

CIFAR10 = Dataset(
    name="cifar10", title="CIFAR-10 (Krizhevsky 2009)", homepage=_BASE + "cifar.html",
    files=[RemoteFile("cifar-10-binary.tar.gz", _BASE + "cifar-10-binary.tar.gz",
                      "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171)],
    counts=dict(OFFICIAL),
    build=lambda paths, subset: _build(paths, subset, hundred=False), load=_load,
    shared_dirs=("cifar10",), note=_NOTE,
    license="no explicit licence; cite Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009")

CIFAR100 = Dataset(
    name="cifar100", title="CIFAR-100 (Krizhevsky 2009)", homepage=_BASE + "cifar.html",
    files=[RemoteFile("cifar-100-binary.tar.gz", _BASE + "cifar-100-binary.tar.gz",
                      "sha256:58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec", 168513733)],
    counts=dict(OFFICIAL),
    build=lambda paths, subset: _build(paths, subset, hundred=True), load=_load,
    shared_dirs=("cifar100",), note=_NOTE, license=CIFAR10.license)

"""CIFAR-10/100: both layouts round-trip pixel-exactly, coarse labels, every error is a DataError."""
from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from exoml import data
from exoml.data import DataError
from exoml.data.cifar import CIFAR10, CIFAR100, COARSE_CLASSES, COARSE_OF_FINE, FINE_CLASSES, SUPERCLASSES

from conftest import shared
from fixtures.cifar import encode, write_cifar_binary, write_cifar_shards, write_tar

SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


def assert_same(b, want):
    for k in SPLIT_KEYS:
        assert b[k].dtype == want[k].dtype, k
        np.testing.assert_array_equal(b[k], want[k], err_msg=k)
    assert b.x_train.shape[1:] == (32, 32, 3) and b.y_train.dtype == np.int64


@pytest.mark.parametrize("hundred", [False, True])
def test_binary_tar_round_trip(tmp_path, hundred):
    name = "cifar100" if hundred else "cifar10"
    path, want = write_cifar_binary(tmp_path / "raw", n_per_class=3 if not hundred else 1, hundred=hundred)
    meta = data.import_(name, [path], subset=True)
    assert meta["subset"] and meta["layout"] == "binary"
    b = data.load(name)
    assert_same(b, want)
    if hundred:
        assert b.classes == FINE_CLASSES and b.coarse_classes == COARSE_CLASSES
        np.testing.assert_array_equal(b.y_train_coarse, COARSE_OF_FINE[want["y_train"]])
    else:
        assert b.classes[0] == "airplane" and len(b.classes) == 10


def test_extracted_bin_files(tmp_path):
    path, want = write_cifar_binary(tmp_path / "raw", n_per_class=2)
    with tarfile.open(path) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    data.import_("cifar10", [tmp_path / "x"], subset=True)
    assert_same(data.load("cifar10"), want)


@pytest.mark.parametrize("hundred,fmt,packed", [(False, "webp", True), (True, "webp", True),
                                                (False, "png", False)])
def test_image_layouts_round_trip(tmp_path, hundred, fmt, packed):
    name = "cifar100" if hundred else "cifar10"
    paths, want = write_cifar_shards(tmp_path / "s", n_per_class=2 if not hundred else 1,
                                     hundred=hundred, fmt=fmt, packed=packed)
    meta = data.import_(name, paths if packed else [tmp_path / "s"], subset=True)
    assert meta["layout"] == "image-folder"
    assert_same(data.load(name), want)


def test_worker_pool_path(tmp_path, monkeypatch):
    """Large imports decode in worker processes: same arrays, and their DataErrors come back."""
    from exoml.data import cifar
    monkeypatch.setattr(cifar, "POOL_MIN", 1)
    monkeypatch.setattr(cifar, "CHUNK", 7)
    paths, want = write_cifar_shards(tmp_path, n_per_class=4)
    data.import_("cifar10", paths, subset=True)
    assert_same(data.load("cifar10"), want)
    bad = write_tar(tmp_path / "bad.tar.gz", {"cifar10/test/cat/zz.webp": b"garbage"})
    with pytest.raises(DataError, match=r"bad\.tar\.gz:cifar10/test/cat/zz\.webp: not a readable image"):
        data.import_("cifar10", [*paths, bad], subset=True)


def _webp_blobs(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "WEBP", quality=90)
        out.append(buf.getvalue())
    return out


def test_the_pool_gets_one_chunk_per_worker_at_a_time(monkeypatch):
    """A chunk goes to the pool only when a worker is free for it: chunks read ahead of the
    decoding never queue up (in memory, or in the pipe where Pool.terminate can hang on them)."""
    from exoml.data import cifar
    monkeypatch.setattr(cifar, "POOL_MIN", 1)
    monkeypatch.setattr(cifar, "CHUNK", 100)
    blobs = _webp_blobs(100)
    d = cifar._Decoder()
    try:
        most = 0
        for i in range(1500):  # 15 chunks, each ~100 decodes: far slower than adding them
            d.add(f"img{i}", blobs[i % 100])
            most = max(most, sum(1 for p in d.parts if hasattr(p, "ready") and not p.ready()))
        assert d.pool is not None and 1 <= most <= d.workers
        assert d.result().shape == (1500, 32, 32, 3)
    finally:
        d.close()


def test_closing_a_pool_whose_terminate_hangs_ends_its_workers(monkeypatch):
    """Pool.terminate can wait forever on its task thread (a CPython race): close gives it
    TERMINATE_WAIT seconds, then kills the workers itself and returns. The race is simulated by a
    terminate that drains the pipe as CPython's does and then waits until the test lets it go."""
    import multiprocessing
    import multiprocessing.pool
    import threading
    from exoml.data import cifar
    monkeypatch.setattr(cifar, "POOL_MIN", 1)
    monkeypatch.setattr(cifar, "CHUNK", 2)
    monkeypatch.setattr(cifar, "TERMINATE_WAIT", 0.5)
    d = cifar._Decoder()
    for i, blob in enumerate(_webp_blobs(4)):
        d.add(f"img{i}", blob)
    assert d.pool is not None and multiprocessing.active_children()
    stuck, real_help = threading.Event(), multiprocessing.pool.Pool._help_stuff_finish

    def help_then_hang(inqueue, task_handler, size):
        real_help(inqueue, task_handler, size)
        stuck.wait()
    monkeypatch.setattr(multiprocessing.pool.Pool, "_help_stuff_finish", staticmethod(help_then_hang))
    t0 = time.monotonic()
    d.close()
    assert time.monotonic() - t0 < 5 and d.pool is None
    assert not multiprocessing.active_children()
    stuck.set()  # the rest of terminate now ends the pool's threads (its workers are gone)
    for t in threading.enumerate():
        if t.name == cifar.POOL_CLOSER:
            t.join(10)
            assert not t.is_alive()


def test_grey_and_rgba_images_become_rgb(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1, fmt="png", packed=False)
    grey = np.arange(1024, dtype=np.uint8).reshape(32, 32)
    Image.fromarray(grey).save(tmp_path / "cifar10/train/cat/zz_grey.png")
    data.import_("cifar10", paths, subset=True)
    b = data.load("cifar10")
    row = np.flatnonzero(b.y_train == 3)[-1]  # "zz_grey.png" sorts after "img_..."
    np.testing.assert_array_equal(b.x_train[row], np.repeat(grey[..., None], 3, axis=2))


def test_coarse_mapping_is_the_official_one():
    assert len(FINE_CLASSES) == 100 == len(set(FINE_CLASSES)) and len(COARSE_CLASSES) == 20
    assert all(len(v) == 5 for v in SUPERCLASSES.values())
    # the array widely used for the python version's labels (e.g. ryanchankh/cifar100coarse)
    official = [4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
                6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
                5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
                10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
                16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13]
    np.testing.assert_array_equal(COARSE_OF_FINE, official)
    coarse = {f: COARSE_CLASSES[COARSE_OF_FINE[i]] for i, f in enumerate(FINE_CLASSES)}
    assert coarse["apple"] == "fruit_and_vegetables" and coarse["whale"] == "aquatic_mammals"
    assert coarse["maple_tree"] == "trees" and coarse["lawn_mower"] == "vehicles_2"
    assert coarse["pickup_truck"] == "vehicles_1" and coarse["keyboard"] == "household_electrical_devices"


def test_cifar100_images_get_coarse_labels(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1, hundred=True)
    data.import_("cifar100", paths, subset=True)
    b = data.load("cifar100")
    by_fine = {b.classes[f]: b.coarse_classes[c] for f, c in zip(b.y_train, b.y_train_coarse)}
    assert by_fine["apple"] == "fruit_and_vegetables" and by_fine["whale"] == "aquatic_mammals"
    assert by_fine["otter"] == "aquatic_mammals" and by_fine["tulip"] == "flowers"


def test_official_files_are_the_binary_version():
    assert [f.name for f in CIFAR10.files] == ["cifar-10-binary.tar.gz"]
    assert CIFAR10.files[0].hash.startswith("sha256:c4a38c50")
    assert [f.name for f in CIFAR100.files] == ["cifar-100-binary.tar.gz"]
    assert CIFAR100.counts == {"train": 50000, "test": 10000}


# ---------------------------------------------------------------- errors -------------

def _err(name, paths, match, subset=True):
    with pytest.raises(DataError, match=match) as e:
        data.import_(name, paths, subset=subset)
    assert "\n" not in str(e.value)
    assert not data.get(name).is_cached()


def test_unsafe_member_name(tmp_path):
    _err("cifar10", [write_tar(tmp_path / "evil.tar.gz", {"../x": b"hi"})], "unsafe member")


def test_wrong_image_size(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1, fmt="png", packed=False)
    (tmp_path / "cifar10/train/dog/big.png").write_bytes(encode(np.zeros((33, 32, 3), np.uint8), "png"))
    _err("cifar10", paths, r"big\.png: image is 32x33, CIFAR images are 32x32")


def test_bad_image(tmp_path):
    bad = write_tar(tmp_path / "c.tar.gz", {"cifar10/train/cat/a.webp": b"RIFF\0\0\0\0WEBPjunk"})
    _err("cifar10", [bad], r"a\.webp: not a readable image \(no WebP, PNG or JPEG data\)$")  # no buffer repr


def test_missing_class_folder_without_subset(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1, fmt="png", packed=False)
    shutil.rmtree(tmp_path / "cifar10/train/frog")
    _err("cifar10", paths, r"0 images of 'frog'", subset=False)


def test_unknown_class_folder_and_bad_split(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1, fmt="png", packed=False)
    shutil.copytree(tmp_path / "cifar10/train/cat", tmp_path / "cifar10/train/kitten")
    _err("cifar10", paths, r"'kitten' is not a cifar10 class")
    paths, _ = write_cifar_shards(tmp_path / "b", n_per_class=1, fmt="png", packed=False)
    shutil.copytree(tmp_path / "b/cifar10/train", tmp_path / "b/cifar10/valid")
    _err("cifar10", paths, r"images must sit in \{train,test\}")


def test_cifar100_shards_are_not_cifar10(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1, hundred=True)
    _err("cifar10", paths, r"is not a cifar10 class")


def test_corrupt_gzip(tmp_path):
    paths, _ = write_cifar_shards(tmp_path, n_per_class=1)
    raw = paths[0].read_bytes()
    paths[0].write_bytes(raw[:20] + bytes(200) + raw[220:])
    _err("cifar10", paths, r"cifar10-train-0\.tar\.gz: corrupt or truncated")
    paths[1].write_bytes(gzip.compress(b"not a tar at all"))
    _err("cifar10", paths[1:], r"cifar10-train-1\.tar\.gz: corrupt or truncated")


def test_truncated_bin_and_bad_labels(tmp_path):
    path, _ = write_cifar_binary(tmp_path / "raw", n_per_class=1)
    with tarfile.open(path) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    b = tmp_path / "x/cifar-10-batches-bin/test_batch.bin"
    raw = b.read_bytes()
    b.write_bytes(raw[:-1])
    _err("cifar10", [tmp_path / "x"], r"test_batch\.bin: \d+ bytes is not a whole number of 3073-byte")
    b.write_bytes(bytes([10]) + raw[1:])
    _err("cifar10", [tmp_path / "x"], r"test_batch\.bin: label 10 out of range")


def test_cifar100_coarse_byte_must_match(tmp_path):
    path, _ = write_cifar_binary(tmp_path / "raw", n_per_class=1, hundred=True)
    with tarfile.open(path) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    b = tmp_path / "x/cifar-100-binary/train.bin"
    raw = bytearray(b.read_bytes())
    raw[0] = (raw[0] + 1) % 20
    b.write_bytes(bytes(raw))
    _err("cifar100", [tmp_path / "x"], r"train\.bin: record 0 has coarse label")


def test_binary_without_subset_needs_every_batch(tmp_path):
    path, _ = write_cifar_binary(tmp_path / "raw", n_per_class=1)
    with tarfile.open(path) as tf:
        tf.extractall(tmp_path / "x", filter="data")
    (tmp_path / "x/cifar-10-batches-bin/data_batch_3.bin").unlink()
    _err("cifar10", [tmp_path / "x"], r"missing binary batch data_batch_3\.bin", subset=False)


def test_pickled_python_version_is_refused(tmp_path):
    tgz = write_tar(tmp_path / "cifar-10-python.tar.gz", {"cifar-10-batches-py/data_batch_1": b"\x80\x02"})
    _err("cifar10", [tgz], r"never unpickled.*binary version")
    renamed = write_tar(tmp_path / "x.tar.gz", {"cifar-100-python/train": b"\x80\x02"})
    _err("cifar100", [renamed], r"never unpickled")


def test_nothing_found(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    _err("cifar10", [tmp_path], r"no CIFAR data")


def test_mixed_layouts_refused(tmp_path):
    path, _ = write_cifar_binary(tmp_path / "a", n_per_class=1)
    paths, _ = write_cifar_shards(tmp_path / "b", n_per_class=1)
    _err("cifar10", [path, *paths], r"both binary batches and image folders")


# ---------------------------------------------------------------- real data ----------

@pytest.mark.realdata
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_real_cifar(name):
    folder = shared(name)
    data.import_(name, [folder])
    data._loaded.clear()
    t = time.process_time()  # CPU time: wall time on a shared, overloaded machine says little
    b = data.load(name)
    assert time.process_time() - t < 2.0  # the processed cache is plain .npy files
    n = len(b.classes)
    assert b.x_train.shape == (50000, 32, 32, 3) and b.x_test.shape == (10000, 32, 32, 3)
    assert b.x_train.dtype == np.uint8 and b.y_train.dtype == np.int64
    assert (np.bincount(b.y_train, minlength=n) == 50000 // n).all()
    assert (np.bincount(b.y_test, minlength=n) == 10000 // n).all()
    assert 80 < b.x_train.mean() < 160 and b.x_train.std() > 40  # real photos, not blank
    if name == "cifar100":
        assert (np.bincount(b.y_train_coarse) == 2500).all() and (np.bincount(b.y_test_coarse) == 500).all()


@pytest.mark.realdata
def test_sigterm_stops_an_import_promptly_and_keeps_the_cache(tmp_path):
    """SIGTERM at three points of a real import (timed against an uninterrupted one on this machine):
    each stops within seconds (exit 130, 'interrupted'), with no traceback, and the cache it would
    replace is intact."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from conftest import shared
    from fixtures.cifar import write_cifar_shards
    real = shared("cifar10")
    env = {**os.environ, "EXOML_DATA": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "exoml", "data", "import", "cifar10"]
    t0 = time.time()
    assert subprocess.run(cmd + [str(real)], env=env, capture_output=True).returncode == 0
    whole = time.time() - t0
    small, _ = write_cifar_shards(tmp_path / "small", n_per_class=1)
    assert subprocess.run(cmd + [str(p) for p in small] + ["--subset"], env=env, capture_output=True).returncode == 0
    meta = tmp_path / "home" / "cifar10" / "processed" / "meta.json"
    before = meta.read_text()
    for fraction in (0.2, 0.45, 0.7):  # reading the archives, decoding in the pool, near the end
        proc = subprocess.Popen(cmd + [str(real)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(fraction * whole)
        if proc.poll() is not None:  # this import ran faster than the timed one: nothing to interrupt
            assert proc.returncode == 0
            assert subprocess.run(cmd + [str(p) for p in small] + ["--subset"], env=env).returncode == 0
            before = meta.read_text()
            continue
        proc.send_signal(signal.SIGTERM)
        t1 = time.time()
        out, err = proc.communicate(timeout=60)
        assert time.time() - t1 < 30, f"stopped {time.time() - t1:.0f} s after the signal"
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in out + err, err[-2000:]
        assert meta.read_text() == before, f"the cache changed (signal at {fraction:.0%} of the import)"

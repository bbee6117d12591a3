"""Download path end to end against a loopback HTTP mirror: hash match, mismatch, truncation, no host."""
from __future__ import annotations

import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exoml import data
from exoml.cli import main
from exoml.data.core import DataError, RemoteFile

from fixtures.mnist import write_mnist


class Mirror:
    """Serves {name: bytes} on 127.0.0.1; names in `truncate` announce their full length but send half."""

    def __init__(self, files: dict[str, bytes], truncate: set[str] = frozenset()):
        files_, truncate_ = files, truncate

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                if name not in files_:
                    self.send_error(404)
                    return
                body = files_[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in truncate_ else body)
                if name in truncate_:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mnist"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """Tiny official-layout MNIST files, with the dataset's hashes and counts pointed at them."""
    paths = write_mnist(tmp_path / "src", n_train=40, n_test=20)
    files = {p.name: p.read_bytes() for p in paths}
    ds = data.get("mnist")
    monkeypatch.setattr(ds, "files", [RemoteFile(rf.name, rf.url, "sha256:" + hashlib.sha256(files[rf.name]).hexdigest())
                                      for rf in ds.files])
    monkeypatch.setattr(ds, "counts", {"train": 40, "test": 20})
    return files


def _raw_files(ds):
    raw = ds.root / "raw"
    return sorted(p.name for p in raw.iterdir()) if raw.exists() else []


def test_fetch_from_http_mirror(tiny_mnist, monkeypatch):
    mirror = Mirror(tiny_mnist)
    try:
        monkeypatch.setenv("EXOML_DATA_MIRROR", mirror.url)
        meta = data.fetch("mnist", progress=False)
    finally:
        mirror.close()
    assert meta["counts"] == {"train": 40, "test": 20}
    ds = data.get("mnist")
    assert _raw_files(ds) == sorted(tiny_mnist)
    assert data.load("mnist").x_train.shape == (40, 28, 28)
    assert all(v == "ok" for v in data.verify("mnist")["raw_files"].values())


def test_fetch_hash_mismatch_leaves_nothing(tiny_mnist, monkeypatch):
    bad = dict(tiny_mnist)
    bad["train-labels-idx1-ubyte.gz"] = gzip.compress(b"\x00\x00\x08\x01" + (40).to_bytes(4, "big") + bytes(40))
    mirror = Mirror(bad)
    try:
        monkeypatch.setenv("EXOML_DATA_MIRROR", mirror.url)
        with pytest.raises(DataError, match="checksum mismatch"):
            data.fetch("mnist", progress=False)
    finally:
        mirror.close()
    ds = data.get("mnist")
    assert "train-labels-idx1-ubyte.gz" not in _raw_files(ds)
    assert not ds.is_cached()


def test_fetch_truncated_download(tiny_mnist, monkeypatch):
    mirror = Mirror(tiny_mnist, truncate={"train-images-idx3-ubyte.gz"})
    try:
        monkeypatch.setenv("EXOML_DATA_MIRROR", mirror.url)
        with pytest.raises(DataError):
            data.fetch("mnist", progress=False)
    finally:
        mirror.close()
    ds = data.get("mnist")
    assert "train-images-idx3-ubyte.gz" not in _raw_files(ds)
    assert not ds.is_cached()


def test_unreachable_host_cli(tiny_mnist, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("EXOML_DATA_MIRROR", f"http://127.0.0.1:{port}/x")
    assert main(["data", "fetch", "mnist"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exoml data import mnist" in err[0]


def test_local_folder_mirror(tiny_mnist, tmp_path, monkeypatch):
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name, body in tiny_mnist.items():
        (folder / name).write_bytes(body)
    monkeypatch.setenv("EXOML_DATA_MIRROR", str(folder))
    assert data.fetch("mnist", progress=False)["counts"]["test"] == 20
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    for p in (data.get("mnist").root / "raw").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="checksum mismatch"):
        data.fetch("mnist", progress=False)
    assert "t10k-labels-idx1-ubyte.gz" not in _raw_files(data.get("mnist"))

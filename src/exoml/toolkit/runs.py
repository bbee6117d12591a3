"""The run folder: runs/<task>/<YYYYmmdd-HHMMSS>/ and everything written into it.

Every file is written atomically (temporary name in the same folder, then os.replace),
so a reader never sees half a file. `status.json` says "running" from the first moment,
"failed" (with the error) or "interrupted" when a run stops early, and "complete" only
after metrics.json and report.md are in place; `latest_run` only ever returns complete
runs, so a crashed run can never be mistaken for a finished one.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import ExomlError


def _file_mode() -> int:
    """The mode a plain open() would give a new file (0666 less the umask): temporary files are
    created private (0600) and get this mode before they replace the real one. The umask is read
    from /proc where it can be (setting it to read it would race other threads' new files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write() names no file: say which one (a full disk, a quota)
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to `path`; it replaces `path` only if the block succeeds.
    For writers that insist on a file name (matplotlib, safetensors, numpy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # the writer's failed write() names no file: say which one
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=True) + "\n")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    import importlib.metadata as md
    versions = {}
    for pkg in ("exoml", "torch", "numpy", "scikit-learn", "pandas", "matplotlib", "safetensors"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "processor": platform.machine(), "cpus": os.cpu_count(), "versions": versions,
            "git_sha": git_sha()}


class Run:
    """One run folder. Use `with new_run(task, cfg) as run:`.

    `writes=False` (the ranks other than 0 of a torchrun job) makes every save a no-op: the
    process reads the folder (config, checkpoint) but leaves writing it to rank 0."""

    def __init__(self, path: Path, resumed: bool = False, writes: bool = True):
        self.path = Path(path)
        self.history: list[dict] = []
        self.started = time.time()
        self.resumed = resumed  # continuing an interrupted run: training starts from its checkpoint
        self.writes = writes

    def file(self, name: str) -> Path:
        return self.path / name

    def status(self, state: str, **extra) -> None:
        if not self.writes:
            return
        write_json(self.file("status.json"), {"status": state, "time": datetime.now().isoformat(timespec="seconds"),
                                              "elapsed_s": round(time.time() - self.started, 3), **extra})

    def log_epoch(self, row: dict) -> None:
        """Append one row to history.csv (the whole file is rewritten atomically: it is small)."""
        self.history.append(dict(row))
        if not self.writes:
            return
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.history)
        atomic_write_text(self.file("history.csv"), buf.getvalue())

    def save_json(self, name: str, obj) -> Path:
        if self.writes:
            write_json(self.file(name), obj)
        return self.file(name)

    def save_figure(self, fig, name: str) -> Path:
        import matplotlib.pyplot as plt
        if self.writes:
            with atomic_path(self.file(name)) as tmp:
                fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(name).suffix[1:] or "png")
        plt.close(fig)
        return self.file(name)

    def save_arrays(self, name: str, **arrays) -> Path:
        """Test-set predictions and the like, as an .npz without pickled objects."""
        if not self.writes:
            return self.file(name)
        with atomic_path(self.file(name)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        return self.file(name)

    def save_weights(self, tensors: dict, name: str = "model.safetensors", meta: dict | None = None) -> Path:
        from safetensors.torch import save
        if not self.writes:
            return self.file(name)
        from .integrity import tensors_sha256
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        # the content hash lets a reader tell a damaged file from a good one (weights.load_state)
        metadata = {**{k: str(v) for k, v in (meta or {}).items()}, "content_sha256": tensors_sha256(tensors)}
        # serialised in memory, written by Python: a full disk is an OSError like any other write
        atomic_write_bytes(self.file(name), save(tensors, metadata=metadata))
        return self.file(name)


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


@contextmanager
def new_run(task: str, config: dict, out: str | Path = "runs", resume: Path | None = None):
    """Create runs/<task>/<timestamp>/ with config.json and a "running" status (or, with `resume`,
    reopen that interrupted run folder as it is). On an exception the status becomes "failed"
    (or "interrupted" on Ctrl-C / SIGTERM) and the exception propagates; the caller marks success
    with `finish`. Under torchrun only rank 0 creates and writes the folder; the other ranks get
    a read-only Run of it."""
    from . import distributed
    if not distributed.is_main():
        path = resume if resume is not None else distributed.share(None)
        yield Run(path, resumed=resume is not None, writes=False)
        return
    if resume is not None:
        run = Run(resume, resumed=True)
        lock = _lock(run.path)
    else:
        base = Path(out) / task
        stamp = _timestamp()
        path = base / stamp
        n = 1
        try:
            base.mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    path.mkdir()
                    break
                except FileExistsError:  # two runs in the same second
                    n += 1
                    path = base / f"{stamp}-{n}"
        except OSError as e:  # --out is a file, read-only, or the disk is full
            raise ExomlError(f"cannot create a run folder under {out}: {e.strerror or e}") from None
        run = Run(path)
        lock = _lock(run.path)
    try:
        if resume is None:
            run.save_json("config.json", {"task": task, "config": config, "environment": environment(),
                                          "started": datetime.now().isoformat(timespec="seconds"),
                                          "world_size": distributed.world_size()})
            distributed.share(run.path)  # the other ranks wait for the folder, then read it
        run.status("running", pid=os.getpid())
        try:
            yield run
        except KeyboardInterrupt:
            _record_end(run, "interrupted")
            raise
        except BaseException as e:
            _record_end(run, "failed", error=f"{type(e).__name__}: {e}")
            raise
    finally:
        lock.close()  # releases the lock: a "running" status without it is a run whose process died


def _record_end(run: Run, state: str, **extra) -> None:
    """Record how a run ended, if the disk lets us: on a full disk the write can fail too, and the
    error that stopped the run is the one to report. The run is still recognisably dead: its
    status says "running" but no process holds its lock (is_live)."""
    try:
        run.status(state, **extra)
    except OSError:
        pass


def _lock(path: Path):
    """Hold an exclusive lock on the run folder while this process writes it: a second writer
    (`--resume` of a run still going) is refused, and a reader can tell a live run from one whose
    process died while its status still says "running" (is_live)."""
    import fcntl
    fh = open(path / ".lock", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise ExomlError(f"{path} is being written by another process right now; wait for it or stop it") from None
    return fh


def is_live(path: Path) -> bool:
    """Is a process writing this run folder now (it holds the folder's lock)?"""
    import fcntl
    try:
        with open(Path(path) / ".lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def finish(run: Run, metrics: dict, report_md: str) -> None:
    """Write metrics.json and report.md, then mark the run complete (in that order)."""
    if not run.writes:
        return
    metrics = {**metrics, "elapsed_s": round(time.time() - run.started, 2)}
    run.save_json("metrics.json", metrics)
    atomic_write_text(run.file("report.md"), report_md)
    run.status("complete")


def is_complete(path: Path) -> bool:
    try:
        return json.loads((Path(path) / "status.json").read_text()).get("status") == "complete"
    except (OSError, json.JSONDecodeError):
        return False


def latest_run(task: str, out: str | Path = "runs") -> Path | None:
    base = Path(out) / task
    if not base.is_dir():
        return None
    done = sorted((p for p in base.iterdir() if p.is_dir() and is_complete(p)), key=lambda p: p.name)
    return done[-1] if done else None

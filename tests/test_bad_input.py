"""The bad-input corpus: hostile or broken inputs given to the installed `exoml` command.

Each case (one row of CORPUS, numbered by the item of the fault list it probes) prepares files in a
scratch folder, runs the console script there (own data home, own runs folder) and checks the
exit code, that the last line of the output is one clean message naming the problem, that no
Python traceback and no library warning was printed, and, for the faults that once gave a silent
wrong answer, that the answer is now the right refusal (`check`). Cases that need a trained run
copy one quick mnist run made once for the module. Faults that a row cannot express (signals) are
dedicated tests below, with the same marker.

Run the corpus alone with `python -m pytest -m faults`, or `python tools/faults.py` for the count
of clean errors, correct answers, tracebacks, silent wrong answers and hangs.

Permission cases run without the power to ignore permission bits: as root the process drops
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its capability bounding set (`setpriv`), which makes
a root process obey mode bits like any user (switching to `nobody` instead would lose the Python
installed under /root). Full-disk cases mount a small tmpfs (a real ENOSPC from the kernel) where
the test may mount, else they limit the size of any file the process writes (RLIMIT_FSIZE, a
real EFBIG from the kernel).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from fixtures.mnist import write_mnist
from test_console import console_script

pytestmark = pytest.mark.faults

TIMEOUT = 180  # seconds: a probe still running after this is counted as a hang
DAC_DROPPED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
WARNING = re.compile(r"^\S*(Warning|warnings\.warn)\b.*", re.M)  # e.g. "…/x.py:12: UserWarning: ..."


class Ctx:
    """What a case's prepare() may use: the scratch folder, a trained run (made once), clean-ups."""

    def __init__(self, tmp: Path, request):
        self.tmp, self._request, self.cleanup = tmp, request, []
        self.run_dir: Path | None = None

    def trained(self) -> Path:
        """Copy the module's data home (tiny mnist imported) and its runs folder (one complete quick
        mnist run) into the scratch folder; returns that run's folder."""
        base = self._request.getfixturevalue("trained_base")
        shutil.copytree(base / "home", self.tmp / "home")
        shutil.copytree(base / "runs", self.tmp / "runs")
        self.run_dir = next((self.tmp / "runs" / "mnist").iterdir())
        return self.run_dir

    def digit(self, name: str = "digit.png") -> Path:
        from PIL import Image
        a = np.full((100, 100), 255, np.uint8)
        a[20:80, 45:55] = 0  # a dark "1" on white paper
        Image.fromarray(a).save(self.tmp / name)
        return self.tmp / name

    def full_disk(self, size: str) -> Path:
        """A folder on a nearly full disk: a tmpfs of `size` where mounting works, else None
        (the case then limits file sizes instead: Case.fsize)."""
        mnt = self.tmp / "disk"
        mnt.mkdir()
        if os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True).returncode == 0:
            self.cleanup.append(lambda: subprocess.run(["umount", "-l", str(mnt)], capture_output=True))
            return mnt
        self.fsize = {"k": 1024, "m": 1 << 20}[size[-1]] * int(size[:-1])
        return mnt


@dataclass
class Case:
    item: int                     # the fault list's item (issue 16) this probes
    name: str
    prepare: Callable             # (ctx) -> argv after `exoml`
    code: int                     # the exit code wanted
    message: str | None           # text the last output line must hold (None: nothing asked)
    check: Callable | None = None  # (ctx, proc) -> what is wrong, or None: the right answer, not just an exit code
    unprivileged: bool = False    # run without the power to ignore permission bits
    umask: int | None = None


# ----------------------------------------------------------------- preparations ----------

def _args(*argv):
    return lambda ctx: list(argv)


def _mnist(tmp: Path, name: str = "m") -> Path:
    write_mnist(tmp / name, n_train=30, n_test=10)
    return tmp / name


def _import(ctx, name, paths, subset=True):
    proc = subprocess.run([str(console_script()), "data", "import", name, *map(str, paths),
                           *(["--subset"] if subset else [])], cwd=ctx.tmp, env=_env(ctx.tmp), capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return ctx.tmp / "home" / name / "processed"


def _config_file(content: str, *argv):
    def prepare(ctx):
        (ctx.tmp / "c.json").write_text(content)
        return [*argv, "--config", str(ctx.tmp / "c.json")]
    return prepare


def _space_file(content: str):
    def prepare(ctx):
        (ctx.tmp / "space.json").write_text(content)
        return ["tune", "mnist", "--quick", "--trials", "1", "--space", str(ctx.tmp / "space.json"), "--out", str(ctx.tmp)]
    return prepare


def _weights_changed(how: str):
    """Item 2: the run's model.safetensors with every float NaN, or 10 KB of its tensor bytes XORed."""
    def prepare(ctx):
        run = ctx.trained()
        path = run / "model.safetensors"
        if how == "nan":
            import torch
            from safetensors.torch import load_file, safe_open, save_file
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata()
            state = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
            save_file(state, str(path), metadata=meta)
            assert all(torch.isnan(v).all() for v in load_file(str(path)).values() if v.is_floating_point())
        else:
            raw = bytearray(path.read_bytes())
            start = 8 + int.from_bytes(raw[:8], "little")  # after the JSON header: the tensors
            for i in range(start, min(start + 10240, len(raw))):
                raw[i] ^= 0x5A
            path.write_bytes(bytes(raw))
        return ["predict", "mnist", str(ctx.digit())]
    return prepare


def _verify_after(change):
    def prepare(ctx):
        cache = _import(ctx, "mnist", [_mnist(ctx.tmp)])
        change(cache)
        return ["data", "verify", "mnist"]
    return prepare


def _flip_pixels(cache):
    x = np.load(cache / "x_train.npy")
    x[3, 5, 5] ^= 0xFF
    np.save(cache / "x_train.npy", x)


def _label_12(cache):
    y = np.load(cache / "y_train.npy")
    y[5] = 12
    np.save(cache / "y_train.npy", y)


def _meta(content):
    def change(cache):
        meta = json.loads((cache / "meta.json").read_text())
        (cache / "meta.json").write_text(content(meta))
    return change


def _run_after_label_12(ctx):
    ctx.trained()
    _label_12(ctx.tmp / "home" / "mnist" / "processed")
    return ["run", "mnist", "--quick", "--out", str(ctx.tmp / "runs2")]


def _image(size, colour):
    def prepare(ctx):
        from PIL import Image
        ctx.trained()
        Image.new("L", size, colour).save(ctx.tmp / "img.png")
        return ["predict", "mnist", str(ctx.tmp / "img.png")]
    return prepare


def _boston_swapped(ctx):
    from fixtures.boston import ROWS, write_housing
    rows = [[r[13]] + r[1:13] + [r[0]] for r in ROWS]  # CRIM and MEDV swapped
    return ["data", "import", "boston", str(write_housing(ctx.tmp / "b", rows)), "--subset"]


def _weak_judge(ctx):
    run = ctx.trained()  # a quick run on 200 tiny digits: far below the judge's 97%
    return ["run", "gan", "--quick", "--judge", str(run), "--out", str(ctx.tmp / "runs")]


def _out_read_only(ctx):
    (ctx.tmp / "ro").mkdir(mode=0o555)
    return ["run", "iris", "--out", str(ctx.tmp / "ro")]


def _out_a_file(ctx):
    (ctx.tmp / "afile").write_text("x")
    return ["run", "iris", "--out", str(ctx.tmp / "afile")]


def _data_home_read_only(ctx):
    src = _mnist(ctx.tmp)
    os.chmod(ctx.tmp / "home", 0o555) if (ctx.tmp / "home").exists() else (ctx.tmp / "home").mkdir(mode=0o555)
    return ["data", "import", "mnist", str(src), "--subset"]


def _report_out_read_only(ctx):
    ctx.trained()
    (ctx.tmp / "ro").mkdir(mode=0o555)
    return ["report", "--runs", str(ctx.tmp / "runs"), "--out", str(ctx.tmp / "ro")]


def _disk_full_run(size):
    def prepare(ctx):
        ctx.trained()
        return ["run", "mnist", "--quick", "--out", str(ctx.full_disk(size))]
    return prepare


def _ended_or_dead(ctx, proc):
    """A run stopped by a full disk records "failed", or (when even that write fails) is
    recognisably dead: "running" with its writer's pid, and no process holding its lock."""
    from exoml.toolkit.runs import is_live
    folders = list((ctx.tmp / "disk" / "mnist").glob("*")) if (ctx.tmp / "disk" / "mnist").is_dir() else []
    for run in folders:
        status = json.loads((run / "status.json").read_text())
        if status["status"] == "failed" and ("No space left" in status["error"] or "File too large" in status["error"]):
            continue
        if status["status"] == "running" and status.get("pid") and not is_live(run):
            continue
        return f"{run}: status {status} after the process ended"
    if "No space left on device" not in proc.stderr and "File too large" not in proc.stderr:
        return "the message does not say the disk is full"
    return None


def _disk_full_report(ctx):
    ctx.trained()
    return ["report", "--runs", str(ctx.tmp / "runs"), "--out", str(ctx.full_disk("40k") / "report")]


def _report_with_damaged_metrics(damage):
    """Item 11: two complete runs, one of them with a damaged metrics.json."""
    def prepare(ctx):
        import matplotlib
        matplotlib.use("Agg")
        from exoml.toolkit import runs
        bad = ctx.trained()
        with runs.new_run("iris", {"seed": 0, "profile": "quick"}, ctx.tmp / "runs") as run:
            runs.finish(run, {"ari_kmeans": 0.73}, "# iris\n")
        metrics = bad / "metrics.json"
        if damage == "truncated":
            metrics.write_text(metrics.read_text()[:10])
        elif damage == "missing":
            metrics.unlink()
        else:
            metrics.write_text("[1, 2]")
        return ["report", "--runs", str(ctx.tmp / "runs")]
    return prepare


def _one_run_skipped(ctx, proc):
    page = (ctx.tmp / "runs" / "report" / "index.html").read_text()
    if page.count('class="summary-row"') != 1 or "skipped" not in page:
        return "the page does not show the good run and say that the damaged one was skipped"
    return None


def _electricity_test_period_missing(ctx):
    from fixtures.electricity import write_power
    from test_task_sequences import electricity_flags, power_text_lines
    test_start = electricity_flags()[1]  # every reading from the test period's first day on is '?'
    lines = []
    for line in power_text_lines():
        d, m, y = map(int, line.split(";")[0].split("/"))
        if f"{y}-{m:02d}-{d:02d}" >= test_start:
            line = ";".join(line.split(";")[:2]) + ";?;?;?;?;?;?;"
        lines.append(line)
    _import(ctx, "electricity", [write_power(ctx.tmp / "raw", lines)])
    return ["run", "electricity", "--quick", "--out", str(ctx.tmp / "runs"), *electricity_flags()]


def _imdb_8_and_8(ctx):
    from fixtures.imdb import write_aclimdb
    _import(ctx, "imdb", [write_aclimdb(ctx.tmp / "raw", n_per_label=4)])
    return ["run", "imdb", "--quick", "--out", str(ctx.tmp / "runs")]


def _boston_3_rows(ctx):
    from fixtures.boston import write_housing
    _import(ctx, "boston", [write_housing(ctx.tmp / "b")])
    return ["run", "boston", "--quick", "--out", str(ctx.tmp / "runs")]


def _symlink_loop(ctx):
    d = _mnist(ctx.tmp)
    os.symlink(d / "a", d / "b")
    os.symlink(d / "b", d / "a")
    return ["data", "import", "mnist", str(d), "--subset"]


def _resume_live_run(ctx):
    """Item 15: --resume of a run whose writer is alive (this test process holds its lock)."""
    run = ctx.trained()
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    fh = open(run / ".lock", "a")
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    ctx.cleanup.append(fh.close)
    return ["run", "mnist", "--resume", str(run)]


def _image_unreadable(ctx):
    ctx.trained()
    os.chmod(ctx.digit("secret.png"), 0)
    return ["predict", "mnist", str(ctx.tmp / "secret.png")]


def _archive_unreadable(ctx):
    from fixtures.imdb import tar_tree, write_aclimdb
    tar = tar_tree(write_aclimdb(ctx.tmp / "tree"), ctx.tmp / "aclImdb_v1.tar.gz", "w:gz")
    os.chmod(tar, 0)
    return ["data", "import", "imdb", str(tar), "--subset"]


def _folder_unreadable(ctx):
    d = _mnist(ctx.tmp)
    os.chmod(d, 0)
    return ["data", "import", "mnist", str(d), "--subset"]


def _image_is_a_folder(ctx):
    ctx.trained()
    (ctx.tmp / "digits.png").mkdir()
    return ["predict", "mnist", str(ctx.tmp / "digits.png")]


def _empty_idx(ctx):
    d = _mnist(ctx.tmp)
    (d / "train-images-idx3-ubyte.gz").unlink()
    (d / "train-images-idx3-ubyte").write_bytes(b"")
    return ["data", "import", "mnist", str(d), "--subset"]


def _cifar_bad_image(ctx):
    from fixtures.cifar import write_cifar_shards, write_tar
    paths, _ = write_cifar_shards(ctx.tmp / "c", n_per_class=1)
    bad = write_tar(ctx.tmp / "bad.tar.gz", {"cifar10/test/cat/zz.webp": b"garbage"})
    return ["data", "import", "cifar10", *map(str, paths), str(bad), "--subset"]


def _nothing_ran(ctx):  # `exoml run all` refused its flags before the first task
    return "a task ran before the flags were refused" if (ctx.tmp / "all").exists() else None


def _no_buffer_repr(ctx, proc):
    return "the message shows an in-memory buffer" if "<_io." in proc.stdout + proc.stderr else None


def _empty_dir(ctx):
    (ctx.tmp / "empty").mkdir()
    return ["data", "import", "all", str(ctx.tmp / "empty")]


def _iris_umask(ctx):
    return ["run", "iris", "--quick", "--out", str(ctx.tmp / "runs")]


def _modes_follow_umask(ctx, proc):
    run = next((ctx.tmp / "runs" / "iris").iterdir())
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    wrong = {k: v for k, v in modes.items() if v != oct(0o640)}
    return f"files not 0640 under umask 027: {wrong}" if wrong or "config.json" not in modes else None


def _emoji_file_name(ctx):
    ctx.trained()
    return ["predict", "mnist", str(ctx.digit("digit-\N{GRINNING FACE}.png"))]


def _prediction_printed(ctx, proc):
    return None if "1." in proc.stdout and "plot:" in proc.stdout else "no prediction printed"


CORPUS = [
    # 1. an untrained "complete" run
    Case(1, "--epochs 0", _args("run", "mnist", "--quick", "--epochs", "0"), 2, "epochs: 0 is out of range"),
    Case(1, "--epochs -1", _args("run", "mnist", "--quick", "--epochs", "-1"), 2, "out of range"),
    # 2. damaged weights
    Case(2, "weights all NaN", _weights_changed("nan"), 2, "damaged"),
    Case(2, "10 KB of weight bytes XORed", _weights_changed("xor"), 2, "model.safetensors"),
    # 3. a damaged cache
    Case(3, "verify: pixel bytes changed", _verify_after(_flip_pixels), 2, "changed since it was imported"),
    Case(3, "verify: y_train[5] = 12", _verify_after(_label_12), 2, "y_train.npy changed since it was imported"),
    Case(3, "run on a cache with y_train[5] = 12", _run_after_label_12, 2, "y_train.npy holds labels outside 0..9"),
    # 4. degenerate images
    Case(4, "a 100x100 white image", _image((100, 100), 255), 2, "no digit found"),
    Case(4, "a 1x1 image", _image((1, 1), 0), 2, "no digit found"),
    Case(4, "a 1x40000 strip", _image((1, 40000), 0), 2, "no digit found"),
    # 5. a dataset with its columns swapped
    Case(5, "Boston with CRIM and MEDV swapped", _boston_swapped, 2, "is outside its range"),
    # 6. compare with no seeds
    Case(6, "compare --seeds 0", _args("compare", "mnist", "--seeds", "0", "--optimizer", "adam", "sgd", "--quick"),
         2, "--seeds must be at least 1"),
    Case(6, "compare --seeds -2", _args("compare", "mnist", "--seeds", "-2", "--optimizer", "adam", "sgd", "--quick"),
         2, "--seeds must be at least 1"),
    # 7. settings quietly changed
    Case(7, "batch_size 64.7 in a config file", _config_file('{"batch_size": 64.7}', "run", "mnist", "--quick"), 2,
         "batch_size"),
    Case(7, "iris --device foo", _args("run", "iris", "--device", "foo"), 2, "'foo' is not one of"),
    Case(7, "run all with a flag some tasks lack", _args("run", "all", "--quick", "--precision", "fp32", "--out", "all"),
         2, "boston, imdb, iris, kddcup, electricity cannot take these flags", check=lambda ctx, proc: _nothing_ran(ctx)),
    Case(7, "run all --resume", _args("run", "all", "--resume", "x", "--out", "all"), 2, "cannot resume",
         check=lambda ctx, proc: _nothing_ran(ctx)),
    # 8. a judge of unknown quality
    Case(8, "gan judged by a weak mnist run", _weak_judge, 2, "below the judge's 97%"),
    # 9. settings out of range
    Case(9, "--batch-size 0", _args("run", "mnist", "--quick", "--batch-size", "0"), 2, "batch_size: 0 is out of range"),
    Case(9, "--lr nan", _args("run", "mnist", "--quick", "--lr", "nan"), 2, "not a finite number"),
    Case(9, "--lr -1", _args("run", "mnist", "--quick", "--lr", "-1"), 2, "lr: -1 is out of range"),
    Case(9, "--dropout 2", _args("run", "mnist", "--quick", "--dropout", "2"), 2, "dropout: 2 is out of range"),
    Case(9, "iris --k 0", _args("run", "iris", "--k", "0"), 2, "k: 0 is out of range"),
    Case(9, "iris --k 500", _args("run", "iris", "--k", "500"), 2, "k: 500 is out of range"),
    Case(9, "--seed -5", _args("run", "iris", "--seed", "-5"), 2, "seed: -5 is out of range"),
    Case(9, "a config file holding a list", _config_file("[1, 2, 3]", "run", "iris"), 2, "c.json"),
    Case(9, "a config file holding {config: 5}", _config_file('{"config": 5}', "run", "iris"), 2, "config"),
    # 10. the file system
    Case(10, "--out read-only", _out_read_only, 2, "cannot create a run folder under", unprivileged=True),
    Case(10, "--out a file", _out_a_file, 2, "cannot create a run folder under"),
    Case(10, "a read-only data home", _data_home_read_only, 2, "Permission denied", unprivileged=True),
    Case(10, "report --out read-only", _report_out_read_only, 2, "cannot write the report under",
         unprivileged=True),
    Case(10, "a full disk at the start of a run", _disk_full_run("8k"), 2, "mnist/", check=_ended_or_dead),
    Case(10, "a full disk during a run", _disk_full_run("100k"), 2, "mnist/", check=_ended_or_dead),
    Case(10, "a full disk during exoml report", _disk_full_report, 2, "cannot write the report under"),
    # 11. one damaged run in the report
    Case(11, "report: metrics.json truncated", _report_with_damaged_metrics("truncated"), 0, "report:",
         check=_one_run_skipped),
    Case(11, "report: metrics.json missing", _report_with_damaged_metrics("missing"), 0, "report:",
         check=_one_run_skipped),
    Case(11, "report: metrics.json a list", _report_with_damaged_metrics("a list"), 0, "report:",
         check=_one_run_skipped),
    # 12. tune
    Case(12, "tune: a missing space file", _args("tune", "mnist", "--quick", "--space", "/nonexistent/space.json"), 2,
         "cannot read search space"),
    Case(12, "tune: an entry without low", _space_file('{"lr": {"type": "float", "high": 0.1}}'), 2, "float needs low"),
    Case(12, "tune: an entry that is a number", _space_file('{"lr": 5}'), 2, "must be a mapping"),
    Case(12, "tune: low above high", _space_file('{"lr": {"type": "float", "low": 0.1, "high": 0.01}}'), 2,
         "low 0.1 is above high 0.01"),
    Case(12, "tune --storage notadb://x", _args("tune", "mnist", "--quick", "--trials", "1", "--storage", "notadb://x"),
         2, "storage"),
    Case(12, "tune boston (no validation metric)", _args("tune", "boston", "--trials", "1"), 2, "cannot be tuned"),
    Case(12, "tune iris (no validation metric)", _args("tune", "iris", "--trials", "1"), 2, "cannot be tuned"),
    # 13. data accepted at import that a run cannot use
    Case(13, "electricity: every test-period reading '?'", _electricity_test_period_missing, 2,
         "the test period has no readings"),
    Case(13, "imdb: an 8+8 review subset", _imdb_8_and_8, 2, "imdb needs at least 40 training reviews"),
    Case(13, "boston: a 3-row subset", _boston_3_rows, 2, "boston needs at least 50 rows"),
    Case(13, "verify: meta.json holding a list", _verify_after(_meta(lambda m: "[1, 2]")), 2,
         "meta.json does not describe its arrays"),
    Case(13, "verify: meta.json without arrays", _verify_after(_meta(
        lambda m: json.dumps({k: v for k, v in m.items() if k != "arrays"}))), 2, "meta.json does not describe its arrays"),
    Case(13, "a symlink loop inside an import folder", _symlink_loop, 0, "imported"),
    # 15. two writers of one run folder
    Case(15, "--resume of a run still being written", _resume_live_run, 2, "still being written by another process"),
    # 16. misleading messages
    Case(16, "an unreadable image", _image_unreadable, 2, "secret.png: permission denied", unprivileged=True),
    Case(16, "an unreadable archive", _archive_unreadable, 2, "aclImdb_v1.tar.gz: permission denied",
         unprivileged=True),
    Case(16, "an unreadable folder", _folder_unreadable, 2, "cannot read the folder", unprivileged=True),
    Case(16, "a folder given as the image", _image_is_a_folder, 2, "is a folder: give an image file"),
    Case(16, "an empty IDX file", _empty_idx, 2, "the file is empty"),
    Case(16, "an undecodable image in memory", _cifar_bad_image, 2, "zz.webp: not a readable image",
         check=_no_buffer_repr),
    Case(16, "import all from an empty folder", _empty_dir, 2, "no dataset found under"),
    Case(16, "import all from a missing folder", _args("data", "import", "all", "nowhere"), 2, "is not one"),
    # 17. file modes
    Case(17, "run files follow the umask (027)", _iris_umask, 0, "report:", check=_modes_follow_umask, umask=0o027),
    # 18. library warnings (every row also fails on a warning in its output)
    Case(18, "predict an image whose name holds an emoji", _emoji_file_name, 0, "plot:", check=_prediction_printed),
]


# ----------------------------------------------------------------- the probe --------------

def _env(tmp: Path) -> dict:
    return {**os.environ, "EXOML_DATA": str(tmp / "home"), "MPLBACKEND": "Agg"}


def _unprivileged_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []  # permission bits already apply
    if shutil.which("setpriv") is None or subprocess.run([*DAC_DROPPED, "true"], capture_output=True).returncode:
        pytest.skip("running as root without setpriv able to drop CAP_DAC_OVERRIDE: permission bits cannot apply")
    return DAC_DROPPED


def probe(case: Case, tmp: Path, request) -> tuple[str, str]:
    """Run one case: (outcome, detail). Outcomes: "clean error", "handled correctly", "traceback",
    "silent wrong answer", "hang", "unclean error" (wrong exit code or message)."""
    ctx = Ctx(tmp, request)
    ctx.fsize = None
    try:
        argv = case.prepare(ctx)
        prefix = _unprivileged_prefix() if case.unprivileged else []

        def limits():
            if case.umask is not None:
                os.umask(case.umask)
            if ctx.fsize:  # no tmpfs: files larger than this fail to write (EFBIG) instead of ENOSPC
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (ctx.fsize, ctx.fsize))
        try:
            proc = subprocess.run([*prefix, str(console_script()), *argv], cwd=tmp, env=_env(tmp),
                                  capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=limits)
        except subprocess.TimeoutExpired:
            return "hang", f"still running after {TIMEOUT} s"
        out = proc.stdout + proc.stderr
        if "Traceback" in out:
            return "traceback", out[-3000:]
        if WARNING.search(out):
            return "unclean error" if proc.returncode else "silent wrong answer", f"a library warning: {WARNING.search(out).group(0)}"
        if case.code != 0 and proc.returncode == 0:
            return "silent wrong answer", f"exit 0\n{out[-2000:]}"
        if case.check is not None and (wrong := case.check(ctx, proc)):
            return "silent wrong answer", f"{wrong}\n{out[-2000:]}"
        if proc.returncode != case.code:
            return "unclean error", f"exit {proc.returncode}, wanted {case.code}\n{out[-2000:]}"
        if case.message is not None:
            stream = proc.stderr if case.code and proc.stderr.strip() else proc.stdout  # verify: stdout
            last = (stream.strip().splitlines() or [""])[-1]
            if case.message not in last or (case.code and not last.startswith("exoml: error:")
                                            and ": FAILED: " not in last):
                return "unclean error", f"last line {last!r} does not hold {case.message!r}\n{out[-2000:]}"
        return ("clean error" if case.code else "handled correctly"), ""
    finally:
        for undo in reversed(ctx.cleanup):
            undo()


@pytest.fixture(scope="module")
def trained_base(tmp_path_factory):
    """A data home with tiny mnist imported and a runs folder with one complete quick mnist run."""
    base = tmp_path_factory.mktemp("trained")
    env = _env(base)
    write_mnist(base / "idx", n_train=200, n_test=50)
    for argv in (["data", "import", "mnist", str(base / "idx"), "--subset"],
                 ["run", "mnist", "--quick", "--out", str(base / "runs")]):
        subprocess.run([str(console_script()), *argv], cwd=base, env=env, check=True, capture_output=True, timeout=TIMEOUT)
    return base


@pytest.mark.parametrize("case", CORPUS, ids=[f"{c.item}: {c.name}" for c in CORPUS])
def test_bad_input_corpus(tmp_path, request, case):
    outcome, detail = probe(case, tmp_path, request)
    request.node.user_properties.append(("outcome", outcome))
    assert outcome in ("clean error", "handled correctly"), f"{outcome}: {detail}"


def test_every_item_is_probed(request):
    """Items 14 (signals during an import) and 19 (tune workers on PostgreSQL) are dedicated tests."""
    request.node.user_properties.append(("probe", False))  # a check of the corpus, not counted as a probe
    assert {c.item for c in CORPUS} | {14, 19} == set(range(1, 20))


# ----------------------------------------------------------------- signals (item 14) -------

def test_sigterm_during_a_pooled_import_stops_it_and_keeps_the_cache(tmp_path, request):
    """Item 14: SIGTERM at spread-out moments of an image import whose decoding runs in worker
    processes (the pool is forced on for a small import): every try ends promptly, with exit 130
    ('interrupted'), or 0 when the import was already done, or by the signal itself while Python
    starts or shuts down; no traceback, no hang, no worker process left behind, and the cache is
    the previous one or the complete new one, never a mix."""
    from fixtures.cifar import write_cifar_shards
    env = _env(tmp_path)
    small, _ = write_cifar_shards(tmp_path / "small", n_per_class=1)
    big, _ = write_cifar_shards(tmp_path / "big", n_per_class=30)
    marker = f"sigterm-probe-{os.getpid()}-{tmp_path.name}"  # finds this test's workers, if any are left
    cmd = [sys.executable, "-c", f"# {marker}\nimport sys; from exoml.data import cifar; cifar.POOL_MIN = 1; "
           "cifar.CHUNK = 20; from exoml.cli import main; sys.exit(main(sys.argv[1:]))", "data", "import", "cifar10"]
    assert subprocess.run(cmd + [*map(str, small), "--subset"], env=env, capture_output=True).returncode == 0
    meta_file = tmp_path / "home" / "cifar10" / "processed" / "meta.json"

    def cache() -> dict:  # what the cache holds (its hashes), not when it was built
        return {k: v for k, v in json.loads(meta_file.read_text()).items() if k != "built"}

    def left_behind() -> list[int]:
        found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]
    t0 = time.time()
    assert subprocess.run(cmd + [*map(str, big), "--subset"], env=env, capture_output=True).returncode == 0
    whole, new = time.time() - t0, cache()
    assert subprocess.run(cmd + [*map(str, small), "--subset"], env=env, capture_output=True).returncode == 0
    old = cache()
    outcome = "handled correctly"
    try:
        for fraction in (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05):  # start, reading, decoding, end
            with open(tmp_path / "err.txt", "w+") as err_file:  # a file, not a pipe: a stray worker cannot block us
                proc = subprocess.Popen(cmd + [*map(str, big), "--subset"], env=env, stdout=subprocess.DEVNULL,
                                        stderr=err_file, text=True)
                time.sleep(fraction * whole)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    outcome = "hang"
                    raise AssertionError(f"still running 30 s after SIGTERM at {fraction:.0%} of the import") from None
                err_file.seek(0)
                err = err_file.read()
            time.sleep(0.5)
            if stray := left_behind():
                for pid in stray:
                    os.kill(pid, signal.SIGKILL)
                outcome = "hang"
                raise AssertionError(f"worker processes {stray} outlived the import (SIGTERM at {fraction:.0%})")
            if "Traceback" in err:
                outcome = "traceback"
            assert "Traceback" not in err, err[-2000:]
            if proc.returncode in (0, -signal.SIGTERM):  # finished, or stopped before/after exoml's handler
                assert cache() in (old, new), f"a mixed cache (SIGTERM at {fraction:.0%}, exit {proc.returncode})"
            else:
                if proc.returncode != 130:
                    outcome = "unclean error"
                assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err[-2000:])
                assert cache() == old, f"the cache changed (SIGTERM at {fraction:.0%} of the import)"
            if cache() != old:
                assert subprocess.run(cmd + [*map(str, small), "--subset"], env=env, capture_output=True).returncode == 0
                old = cache()
    finally:
        request.node.user_properties.append(("outcome", outcome))

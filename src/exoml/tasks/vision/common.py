"""What the four image tasks (mnist, fashion-mnist, cifar10, cifar100) share for data, precision and
inference, so each task file only says what is its own: the split, the data on the device, bf16
autocast where it pays, the validation pass of the training loop, test-time augmentation. The
training loop itself is toolkit/loop.py, augmentation ops are in augment.py, the Muon optimizer in
muon.py, figures, report and `exoml predict` in report.py.

Data stays on the device as one uint8 tensor (N, C, H, W); a batch is gathered by index, turned
into floats in [0, 1] and augmented there, so nothing is copied per step. Every model starts with
a `Normalize` layer holding the training split's channel mean/std as buffers: the statistics are
saved with the weights, and a model takes plain [0, 1] images (what `predict` and the GAN task feed it).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract import Tuning
from ...toolkit.config import Common
from ...errors import ExomlError  # noqa: F401  (vision.ExomlError: what autocast raises)
from ...toolkit.train import METRICS, autocast, cpu_has_bf16  # noqa: F401  (V.cpu_has_bf16: what auto means here)


# ---------------------------------------------------------------- settings ------------

# `exoml tune` of an image task: its recipes train on the whole training split (they pick nothing at
# run time), so every trial holds out 5,000 images and is scored on them
TUNING = Tuning("val_accuracy", trial_settings={"val_size": 5000})

@dataclass
class ImageCommon(Common):
    """Settings every image task has, on top of Common."""
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 autocast on CUDA and on CPUs with native bf16, else fp32) | bf16 | fp32",
        "choices": ["auto", "bf16", "fp32"]})
    tta_pad: ClassVar[str] = "reflect"  # how test-time shifts (--tta) fill the border (not a setting: the task's)


def config_from_run(config_cls, info: dict):
    """The Config a run was trained with (its config.json), for rebuilding the model."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in info.get("config", {}).items() if k in names})


class Timer:
    """Seconds spent in a block: CUDA events on a GPU (kernels run asynchronously), else the wall clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds = 0.0

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds += self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds += time.perf_counter() - self.t0


# ---------------------------------------------------------------- data ----------------

def nchw(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 tensor (N, C, H, W)."""
    x = np.ascontiguousarray(x)
    t = torch.from_numpy(x if x.flags.writeable else x.copy())
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def split(data, cfg) -> dict[str, np.ndarray]:
    """Train/validation split carved from the official train split (stratified), the optional
    subsets of smoke runs, and the official test split."""
    from sklearn.model_selection import train_test_split
    rng = np.random.default_rng(cfg.seed)
    x, y = data.x_train, data.y_train
    if cfg.train_subset and cfg.train_subset < len(y):
        keep = np.sort(rng.choice(len(y), cfg.train_subset, replace=False))
        x, y = x[keep], y[keep]
    out = {"x_test": data.x_test, "y_test": data.y_test}
    n_test = 256 if cfg.dry_run else cfg.test_subset  # a subset is reported as such (n_test)
    if n_test and n_test < len(out["y_test"]):  # a fixed random sample: some copies are sorted by class
        keep = np.sort(np.random.default_rng(0).choice(len(out["y_test"]), n_test, replace=False))
        out = {k: v[keep] for k, v in out.items()}
    val = min(cfg.val_size, len(y) // 5)
    if val > 0:
        counts = np.bincount(y)
        strat = y if counts[counts > 0].min() >= 2 and val >= len(counts) else None
        tr, va = train_test_split(np.arange(len(y)), test_size=val, stratify=strat, random_state=cfg.seed)
        out.update(x_train=x[np.sort(tr)], y_train=y[np.sort(tr)], x_val=x[np.sort(va)], y_val=y[np.sort(va)])
    else:
        out.update(x_train=x, y_train=y)
    return out


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in [0, 1] units, in chunks (float64)."""
    c = x.shape[1]
    s, s2, n = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for chunk in x.split(8192):
        v = chunk.to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        s += v.sum(1).cpu()
        s2 += (v * v).sum(1).cpu()
        n += v.shape[1]
    mean = s / max(n, 1)
    std = (s2 / max(n, 1) - mean ** 2).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def load_data(name: str, cfg, device: torch.device):
    """Load the dataset, split it, put the images on the device as uint8 tensors and compute the
    training statistics. Returns a Bunch: numpy parts (x_train, ...), tensors (tx_train, ty_train,
    tx_val, ty_val, tx_test), classes, mean, std, md (the report's data paragraph)."""
    from sklearn.utils import Bunch
    from ... import data as datasets
    ds = datasets.load(name)
    parts = split(ds, cfg)
    d = Bunch(**parts, classes=list(ds.classes), dataset=ds)
    for k, v in parts.items():
        d["t" + k] = (nchw(v) if k.startswith("x_") else torch.from_numpy(np.asarray(v))).to(device)
    d.val = (d.tx_val, d.ty_val) if "tx_val" in d else None
    d.mean, d.std = channel_stats(d.tx_train)
    n_val = len(parts.get("y_val", []))
    subset = (f" (a subset: {len(parts['y_test']):,} of {len(ds.y_test):,})" if len(parts["y_test"]) < len(ds.y_test)
              else "")
    carved = (f"{len(parts['y_train']):,} training images and {n_val:,} validation images carved from the official "
              f"training split ({len(ds.y_train):,} images; stratified, seed {cfg.seed})" if n_val else
              f"{len(parts['y_train']):,} training images of the official training split ({len(ds.y_train):,} images), "
              f"no validation split: the last epoch's weights are kept, nothing is chosen on one")
    d.md = (f"{carved}; evaluation on the official "
            f"test split{subset}. Images {'x'.join(map(str, ds.x_train.shape[1:]))} uint8, {len(d.classes)} classes. "
            f"All images sit on the {device.type} as one uint8 tensor; batches are gathered and augmented there.\n\n")
    return d


class Normalize(nn.Module):
    """(x - mean) / std per channel; the training split's statistics live in buffers (saved with the weights)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    def set_stats(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view_as(self.mean))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).view_as(self.std))

    def forward(self, x):
        return (x - self.mean) / self.std


# ---------------------------------------------------------------- training ------------

def memory_format(device: torch.device):
    """channels_last on CUDA and on the CPU (oneDNN convolutions are faster with it there too)."""
    return torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format


def to_float(xb: torch.Tensor) -> torch.Tensor:
    return xb.float().div_(255).contiguous(memory_format=memory_format(xb.device))


def validation(val: tuple | None, metrics, precision: str = "auto"):
    """validate(model) for loop.fit: cross-entropy and `metrics` (train.METRICS names) of the logits
    of the validation images (uint8 on the device); None without a validation split."""
    if val is None or not len(val[1]):
        return None
    x, y = val[0], val[1].cpu()

    def validate(model: nn.Module) -> dict:
        logits = predict_logits(model, x, precision=precision)
        return {"loss": F.cross_entropy(logits, y).item(), **{m: METRICS[m](logits, y) for m in metrics}}
    return validate


# ---------------------------------------------------------------- inference -----------

def tta_views(x: torch.Tensor, tta: str, pad_mode: str = "reflect") -> list[list[torch.Tensor]]:
    """Groups of views whose logits are averaged: [[x, flip(x)], [one-pixel shifts...]].
    tta: none | flip | translate | flip_translate."""
    base = [x, x.flip(-1)] if "flip" in tta else [x]
    groups = [base]
    if "translate" in tta:
        h, w = x.shape[-2:]
        xp = F.pad(x, (1,) * 4, mode=pad_mode)
        shifted = [xp[..., 0:h, 0:w], xp[..., 2:h + 2, 2:w + 2]]  # up-left and down-right by one pixel
        groups.append([v for s in shifted for v in ([s, s.flip(-1)] if "flip" in tta else [s])])
    return groups


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, tta: str = "none", batch_size: int = 1000,
                   pad_mode: str = "reflect", precision: str = "auto") -> torch.Tensor:
    """float32 logits (on the CPU) for uint8 images x (N, C, H, W) on the model's device; with
    test-time augmentation the mean over each group of views, then over the groups."""
    model.eval()
    out = []
    for chunk in x.split(batch_size):
        xb = to_float(chunk)
        means = []
        for group in tta_views(xb, tta, pad_mode):
            with autocast(xb.device, precision):
                means.append(torch.stack([model(v).float() for v in group]).mean(0))
        out.append(torch.stack(means).mean(0).cpu())
    return torch.cat(out) if out else torch.empty(0)

"""CIFAR-10 classification with a small fast CNN, trained the airbench way (our own code, after
Keller Jordan's cifar10-airbench, airbench94_muon: whitened first layer, BatchNorm, Muon).

Data: CIFAR-10, 50,000 training images (5,000 held out for validation by default; `--val-size 0`
trains on all of them once the settings are chosen) and the official 10,000 test images, 32x32 RGB.
Model: a frozen 2x2 conv initialised to whiten image patches (its bias trains for 3 epochs), then
three groups [conv-pool-BN-GELU-conv-BN-GELU] of widths 64/256/256, max-pool, a linear head.
Recipe: Muon for the conv filters, Nesterov SGD with their own learning rates for the BatchNorm
biases, the whitening bias and the head; linear decay to 0; label smoothing 0.2; every-other-epoch
mirroring ("alternating flip") and 2-pixel random translation; test-time mirror + 1-pixel shifts.
bf16 autocast and channels_last on CUDA (and on CPUs with native bf16, `--precision auto`), the data
kept on the device as one tensor.

Target: >= 94.0% test accuracy (mean of several seeds), as airbench94; measured results are in
BENCHMARKS.md.

    exoml run cifar10 --val-size 0         # the speed recipe (8 epochs, batch 2000)
    exoml predict cifar10 photo.jpg        # any image: made RGB and resized to 32x32
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from . import augment, common as vision, report
from .page import image_page
from ..contract import Headline, Profile, Reference, Task, Tuning
from ...toolkit import loop, schedules
from .muon import Muon
from ...toolkit.train import make_loss, make_optimizer, pick_device, seed_everything

NAME = "cifar10"


@dataclass
class Config(vision.ImageCommon):
    widths: list[int] = field(default_factory=lambda: [64, 256, 256])  # channels of the three conv groups
    bn_momentum: float = 0.6         # BatchNorm running statistics keep 60% of the old value per step
    epochs: int = 8                  # passes over the training split
    batch_size: int = 2000           # images per step
    loss: str = "cross_entropy"      # summed over the batch (the learning rates below assume it)
    label_smoothing: float = 0.2
    optimizer: str = field(default="sgd", metadata={"help": "optimizer of the BatchNorm and whitening biases (--lr) "
                           "and of the linear head (--head-lr): adam | adamw | sgd | rmsprop; the conv filters "
                           "(the 3x3 conv weights of the three conv groups) always use Muon (--muon-lr); the whitening filters stay "
                           "frozen"})
    lr: float = 0.053                # --optimizer lr of the BatchNorm and whitening biases, per unit of summed loss
    head_lr: float = 0.67            # --optimizer lr of the linear head
    muon_lr: float = 0.24            # Muon step for conv filters (relative to the filter norm)
    momentum: float = 0.85           # Nesterov momentum of --optimizer sgd (Muon's is 0.6)
    weight_decay: float = 2e-6       # decoupled: fraction removed per step, per image of the batch
    whiten_bias_epochs: float = 3.0  # epochs after which the whitening bias is frozen
    translate: int = 2               # random shifts of up to this many pixels (reflect padding)
    tta: str = field(default="flip_translate", metadata={"help": "test-time augmentation",
                                                         "choices": ["none", "flip", "flip_translate"]})
    val_size: int = 5000             # validation images carved from train (0: train on all 50,000)
    train_subset: int = 0            # use only this many training images (0: all; smoke runs)
    test_subset: int = 0             # evaluate on a fixed random N test images (0: all of the official test split)
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])

PROFILES = {
    "full": Profile({}, "the airbench-style speed recipe (aimed at 94% test accuracy with --val-size 0)"),
    "cpu": Profile({}, "the full recipe: the speed recipe is a CPU recipe too"),
    "quick": Profile(dict(widths=[16, 32, 32], epochs=2, batch_size=100, train_subset=500, val_size=100,
                          test_subset=200, tta="flip"), "seconds: a smoke test of the pipeline"),
}


# ---------------------------------------------------------------- model ---------------

class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1 (only the bias learns); `momentum` in the usual sense: how much of the old
    running statistics is kept per step (torch counts the other way)."""

    def __init__(self, channels: int, momentum: float = 0.6):
        super().__init__(channels, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 'same' conv without bias; the first in_channels filters start as the identity (dirac)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, padding="same", bias=False)
        nn.init.dirac_(self.weight.data[:c_in])


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__(Conv(c_in, c_out), nn.MaxPool2d(2), BatchNorm(c_out, bn_momentum), nn.GELU(),
                         Conv(c_out, c_out), BatchNorm(c_out, bn_momentum), nn.GELU())


class Net(nn.Module):
    def __init__(self, widths=(64, 256, 256), bn_momentum: float = 0.6, classes: int = 10):
        super().__init__()
        self.norm = vision.Normalize(3)
        self.whiten = nn.Conv2d(3, 24, 2, bias=True)  # 2x2 patches: 12 whitening filters and their negatives
        self.whiten.weight.requires_grad = False
        self.layers = nn.Sequential(nn.GELU(), ConvGroup(24, widths[0], bn_momentum),
                                    ConvGroup(widths[0], widths[1], bn_momentum),
                                    ConvGroup(widths[1], widths[2], bn_momentum), nn.MaxPool2d(3))
        self.head = nn.Linear(widths[2], classes, bias=False)
        with torch.no_grad():
            self.head.weight /= self.head.weight.std()

    @torch.no_grad()
    def init_whiten(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Filters = eigenvectors of the covariance of all 2x2 patches of the (normalised) images x,
        scaled by 1/sqrt(eigenvalue): the first layer's outputs start decorrelated with unit variance."""
        c, (h, w) = x.shape[1], self.whiten.weight.shape[2:]
        patches = x.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w).float()
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = eigvec.T.reshape(-1, c, h, w) / torch.sqrt(eigval.view(-1, 1, 1, 1) + eps)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.whiten(self.norm(x))).flatten(1)
        return self.head(x) / x.shape[1]


def build_model(cfg: Config | None = None) -> Net:
    cfg = cfg or Config()
    return Net(cfg.widths, cfg.bn_momentum)


def export(run_dir, info):
    """`exoml export cifar10`: the run's network and its test images (vision/export.py)."""
    from .export import image_classifier
    return image_classifier(sys.modules[__name__], NAME, run_dir, info, mode="photo")


# ---------------------------------------------------------------- run -----------------

def run(cfg: Config, run) -> tuple[dict, str]:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    torch.backends.cudnn.benchmark = True

    # data: uint8 on the device, statistics from the training split, explore figures
    d = vision.load_data(NAME, cfg, device)
    if run.writes:  # explore: samples, class balance, pixel statistics
        d.md += report.explore(run, d.x_train, d.y_train, d.classes, d.mean, d.std)

    # model; the whitening filters come from the first 5,000 training images
    model = build_model(cfg)
    model.norm.set_stats(d.mean, d.std)
    model = model.to(device, memory_format=vision.memory_format(device))
    model.init_whiten(model.norm(vision.to_float(d.tx_train[:5000])))

    # optimizers: Muon for conv filters, Nesterov SGD (by name) for biases and head, linear decay
    loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing, reduction="sum")
    filters = [p for p in model.layers.parameters() if p.ndim == 4]
    norm_biases = [p for m in model.modules() if isinstance(m, BatchNorm) for p in [m.bias]]
    wd = cfg.weight_decay * cfg.batch_size  # decoupled decay per step; torch's SGD multiplies it by lr
    groups = [dict(params=[model.whiten.bias], lr=cfg.lr, weight_decay=wd / cfg.lr),
              dict(params=norm_biases, lr=cfg.lr, weight_decay=wd / cfg.lr),
              dict(params=[model.head.weight], lr=cfg.head_lr, weight_decay=wd / cfg.head_lr)]
    sgd = make_optimizer(cfg.optimizer, groups, cfg.lr, momentum=cfg.momentum, nesterov=True)
    muon = Muon(filters, lr=cfg.muon_lr, momentum=0.6, nesterov=True)
    steps = schedules.steps(len(d.ty_train), cfg.batch_size, cfg.epochs, max_steps=1 if cfg.dry_run else None)
    whiten_steps = schedules.steps(len(d.ty_train), cfg.batch_size, cfg.whiten_bias_epochs)
    decay = schedules.linear_decay(steps)  # SGD groups: whitening bias (decays over its own steps), BN biases, head
    scheds = [schedules.lambda_lr(sgd, [schedules.linear_decay(whiten_steps), decay, decay]),
              schedules.lambda_lr(muon, decay)]

    # augmentation: each image has a fixed random mirror bit; odd epochs use it, even epochs its
    # opposite, so every image is seen both ways in every pair of epochs ("alternating flip")
    mirror = torch.rand(len(d.ty_train), device=device) < 0.5

    def augment_batch(xb, yb, idx, epoch):
        xb = augment.flip(xb, mirror[idx] if epoch % 2 else ~mirror[idx])
        return augment.translate(xb, cfg.translate, mode="reflect"), yb

    # train
    cpu0 = time.process_time()
    with vision.Timer(device) as t_train:
        history = loop.fit(model, d.tx_train, d.ty_train, loss_fn, [sgd, muon], scheds, epochs=cfg.epochs,
                           batch_size=cfg.batch_size, transform=vision.to_float, augment=augment_batch,
                           metrics=cfg.metrics, validate=vision.validation(d.val, cfg.metrics, cfg.precision),
                           precision=cfg.precision, max_steps=1 if cfg.dry_run else None, log=run.log_epoch,
                           run=run, desc=NAME)
    cpu_s = time.process_time() - cpu0

    # evaluate on the official test split
    with vision.Timer(device) as t_eval:
        logits = vision.predict_logits(model, d.tx_test, cfg.tta, precision=cfg.precision)
    intro = (f"An airbench-style CNN (widths {cfg.widths}, whitened 2x2 first layer) trained for {cfg.epochs:g} "
             f"epochs at batch {cfg.batch_size}: Muon (lr {cfg.muon_lr:g}) for conv filters, Nesterov SGD for biases "
             f"(lr {cfg.lr:g}) and head (lr {cfg.head_lr:g}), label smoothing {cfg.label_smoothing:g}, alternating "
             f"flip + {cfg.translate}-pixel translation, test-time augmentation `{cfg.tta}`.")
    return report.conclude(run, cfg, NAME, "CIFAR-10: fast CNN (airbench-style)", intro, model, d, history, logits,
                      t_train, t_eval, cpu_s, [])


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    report.add_predict_args(parser)


def predict(args) -> int:
    """Top-5 classes for one image of any size or mode (made RGB, resized to 32x32)."""
    return report.predict_image(args, NAME, sys.modules[__name__], size=32, grey=False, mode="photo")


TASK = Task(
    name=NAME, exercise="CIFAR-10 image classification", dataset="cifar10",
    model="airbench-style CNN: frozen whitening 2x2 conv, three conv groups with BatchNorm; Muon for the "
          "conv filters, Nesterov SGD for biases and head",
    headline=Headline("accuracy", "test accuracy"),
    reference=Reference("94.0% test accuracy in 3.3 s on one A100 (airbench94)", 0.94,
                        "Jordan, 94% on CIFAR-10 in 3.29 seconds, arXiv:2404.00498"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=image_page(NAME, sys.modules[__name__], size=32, grey=False, mode="photo", canvas=False),
    tuning=Tuning("val_accuracy"), distributed=True, export=export)

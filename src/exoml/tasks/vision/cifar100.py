"""CIFAR-100 classification with a deep residual CNN (ResNet-18 layout for 32x32 images).

Data: CIFAR-100, 50,000 training images (5,000 held out for validation) and the official 10,000
test images, 32x32 RGB, 100 fine classes (20 superclasses, reported as `coarse_accuracy`).
Model: 3x3 stem, four stages of residual blocks (widths 64/128/256/512, 2 blocks each, stride 2
between stages), global average pool, linear head; the last BatchNorm of each block starts at 0 so
each block starts as the identity. Recipe: on-device random crop (4 px reflect padding) + mirror,
CutMix, label smoothing, Nesterov SGD with a one-cycle lr, test-time mirror averaging; bf16
autocast and channels_last on CUDA and on CPUs with native bf16 (`--precision auto`).

Profiles (`--profile`): `full` (default, 200 epochs with CutMix; aimed at >= 80% test accuracy)
and `fast` (30 epochs without CutMix; aimed at >= 75%); measured results are in BENCHMARKS.md.

    exoml run cifar100                      # full recipe (a GPU job)
    exoml run cifar100 --profile cpu
    exoml predict cifar100 photo.jpg        # any image: made RGB and resized to 32x32
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import augment, common as vision, report
from .page import image_page
from ..contract import Headline, Profile, Reference, Task, Tuning
from ...toolkit import loop, schedules
from ...toolkit.train import make_loss, make_optimizer, pick_device, seed_everything

NAME = "cifar100"


@dataclass
class Config(vision.ImageCommon):
    width: int = 64                  # channels of the first stage, doubled at each following stage
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # residual blocks per stage (ResNet-18)
    epochs: int = 200                # passes over the training split
    batch_size: int = 512            # images per step
    loss: str = "cross_entropy"
    label_smoothing: float = 0.1     # probability mass spread over the other classes
    optimizer: str = "sgd"           # all parameters: adam | adamw | sgd | rmsprop
    momentum: float = 0.9            # Nesterov momentum of --optimizer sgd
    lr: float = 0.2                  # peak learning rate of the one-cycle schedule (batch 512)
    weight_decay: float = 5e-4       # L2 penalty coefficient
    warmup: float = 0.05             # fraction of steps warming the lr up
    crop_pad: int = 4                # random crop of the image padded by this many pixels (reflect)
    flip: bool = True                # mirror half of the training images
    cutmix: float = 0.5              # probability of CutMix per batch
    tta: str = field(default="flip", metadata={"help": "test-time augmentation",
                                               "choices": ["none", "flip", "flip_translate"]})
    val_size: int = 5000             # validation images carved from train (0: train on all 50,000)
    train_subset: int = 0            # use only this many training images (0: all; smoke runs)
    test_subset: int = 0             # evaluate on a fixed random N test images (0: all of the official test split)
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])


# The full recipe is the Config's defaults; the others change some of them.
CPU = dict(epochs=30, warmup=0.15, cutmix=0.0)
PROFILES = {
    "full": Profile({}, "200 epochs with CutMix (aimed at 80% test accuracy; not measured)"),
    "cpu": Profile(CPU, "30 epochs without CutMix (aimed at 75%; not measured)"),
    "quick": Profile({**CPU, **dict(width=8, blocks=[1, 1, 1, 1], epochs=1, batch_size=50, train_subset=300,
                                     val_size=100, test_subset=200)}, "seconds: a smoke test of the pipeline"),
}


# ---------------------------------------------------------------- model ---------------

class Block(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (a 1x1 conv where the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)  # the block starts as the identity: deep nets train from step 1
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)), inplace=True)))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    def __init__(self, width: int = 64, blocks=(2, 2, 2, 2), classes: int = 100):
        super().__init__()
        self.norm = vision.Normalize(3)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        layers, c = [], width
        for stage, n in enumerate(blocks):  # 32x32 -> 16 -> 8 -> 4
            c_out = width * 2 ** stage
            for i in range(n):
                layers.append(Block(c, c_out, 2 if stage > 0 and i == 0 else 1))
                c = c_out
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.stages(self.stem(self.norm(x)))
        return self.head(x.mean((2, 3)))


def build_model(cfg: Config | None = None) -> ResNet:
    cfg = cfg or Config()
    return ResNet(cfg.width, cfg.blocks)


def export(run_dir, info):
    """`exoml export cifar100`: the run's network and its test images (vision/export.py)."""
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

    # model, loss and optimizer by name, one-cycle schedule
    model = build_model(cfg)
    model.norm.set_stats(d.mean, d.std)
    model = model.to(device, memory_format=vision.memory_format(device))
    loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, momentum=cfg.momentum, nesterov=True)
    steps = schedules.steps(len(d.ty_train), cfg.batch_size, cfg.epochs, max_steps=1 if cfg.dry_run else None)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, cfg.warmup, start=0.1))

    def augment_batch(xb, yb, idx, epoch):  # targets become class probabilities (CutMix mixes two labels)
        xb = augment.translate(augment.flip(xb) if cfg.flip else xb, cfg.crop_pad, mode="reflect")
        return augment.cutmix(xb, yb, len(d.classes), cfg.cutmix)

    # train
    cpu0 = time.process_time()
    with vision.Timer(device) as t_train:
        history = loop.fit(model, d.tx_train, d.ty_train, loss_fn, [opt], [sched], epochs=cfg.epochs,
                           batch_size=cfg.batch_size, transform=vision.to_float, augment=augment_batch,
                           metrics=cfg.metrics, validate=vision.validation(d.val, cfg.metrics, cfg.precision),
                           precision=cfg.precision, max_steps=1 if cfg.dry_run else None, log=run.log_epoch,
                           run=run, desc=NAME)
    cpu_s = time.process_time() - cpu0

    # evaluate on the official test split; superclass accuracy from the official fine -> coarse map
    with vision.Timer(device) as t_eval:
        logits = vision.predict_logits(model, d.tx_test, cfg.tta, precision=cfg.precision)
    from ...data.cifar import COARSE_OF_FINE
    coarse_acc = float(np.mean(COARSE_OF_FINE[logits.argmax(1).numpy()] == COARSE_OF_FINE[d.y_test]))
    intro = (f"A ResNet (blocks {cfg.blocks}, base width {cfg.width}) trained on CIFAR-100 with the `{cfg.profile}` "
             f"profile: {cfg.epochs:g} epochs at batch {cfg.batch_size}, random crop + mirror, CutMix probability "
             f"{cfg.cutmix:g}, label smoothing {cfg.label_smoothing:g}, {cfg.optimizer} (Nesterov) with a one-cycle lr "
             f"(peak {cfg.lr:g}), test-time augmentation `{cfg.tta}`.")
    coarse = f"Superclass (coarse) accuracy, the fine prediction mapped to its superclass: {coarse_acc:.4f}."
    return report.conclude(run, cfg, NAME, "CIFAR-100: ResNet", intro, model, d, history, logits, t_train, t_eval,
                      cpu_s, [("Superclasses", coarse)], extra_metrics={"coarse_accuracy": coarse_acc})


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    report.add_predict_args(parser)


def predict(args) -> int:
    """Top-5 of the 100 classes for one image of any size or mode (made RGB, resized to 32x32)."""
    return report.predict_image(args, NAME, sys.modules[__name__], size=32, grey=False, mode="photo")


TASK = Task(
    name=NAME, exercise="CIFAR-100 image classification", dataset="cifar100",
    model="deep CNN: ResNet-18 (four stages of residual blocks), Nesterov SGD",
    headline=Headline("accuracy", "test accuracy"),
    reference=Reference("81.2% test accuracy (WRN-28-10)", 0.812, "Zagoruyko & Komodakis, BMVC 2016"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=image_page(NAME, sys.modules[__name__], size=32, grey=False, mode="photo", canvas=False),
    tuning=Tuning("val_accuracy"), distributed=True, export=export)

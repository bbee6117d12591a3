"""CIFAR-100 classification with a deep CNN: a ResNet-18 (full recipe) or cifar10's airbench CNN
made wider and trained longer (the CPU profile).

Data: CIFAR-100, all 50,000 training images by default (both recipes pick nothing at run time: a
fixed number of epochs and the last weights; `--val-size 5000` holds out a validation split to watch
its curves) and the official 10,000 test images, 32x32 RGB, 100 fine classes (20 superclasses,
reported as `coarse_accuracy`).
`--arch resnet`: 3x3 stem, four stages of residual blocks (widths 64/128/256/512, 2 blocks each,
stride 2 between stages), global average pool, linear head; the last BatchNorm of each block starts
at 0 so each block starts as the identity. Random crop (4 px reflect padding) + mirror, CutMix,
label smoothing, Nesterov SGD with a one-cycle lr, test-time mirror averaging.
`--arch airbench`: the network and optimizers of cifar10 (airbench.py) with 100 outputs.
Either arch takes progressive resizing (`--low-res 24 --low-res-share 0.47`): the first 47% of the
epochs see the training images downscaled (24x24: 56% of the pixels); the later epochs, the
validation and the test images are 32x32.
bf16 autocast and channels_last on CUDA and on CPUs with native bf16 (`--precision auto`).

Profiles (`--profile`): `full` (ResNet-18, 200 epochs with CutMix; the default with a GPU) and
`cpu` (airbench widths 96/256/384, 30 epochs, the first 14 on 24x24 images; the default without
one); measured results are in BENCHMARKS.md.

    exoml run cifar100                      # the cpu profile without a GPU, the full one with
    exoml run cifar100 --profile full
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

from . import airbench, augment, common as vision, report
from .page import image_page
from ..contract import Headline, Profile, Reference, Task
from ...toolkit.config import ConfigError
from ...toolkit import loop, schedules
from ...toolkit.train import make_loss, make_optimizer, pick_device, seed_everything

NAME = "cifar100"


@dataclass
class Config(vision.ImageCommon):
    arch: str = field(default="resnet", metadata={"help": "resnet: ResNet-18 layout, one-cycle Nesterov SGD; "
                      "airbench: cifar10's fast CNN (whitened first layer, Muon for conv filters). The other "
                      "settings are the profile's, tuned for its arch (full: resnet, cpu: airbench): changing "
                      "--arch alone keeps them", "choices": ["resnet", "airbench"]})
    width: int = 64                  # resnet: channels of the first stage, doubled at each following stage
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # resnet: residual blocks per stage (ResNet-18)
    widths: list[int] = field(default_factory=lambda: [96, 256, 384])  # airbench: channels of the three conv groups
    bn_momentum: float = 0.6         # airbench: BatchNorm running statistics keep this share of the old value per step
    epochs: int = 200                # passes over the training split
    batch_size: int = 512            # images per step
    loss: str = "cross_entropy"      # resnet: averaged over the batch; airbench: summed (its learning rates assume it)
    label_smoothing: float = 0.1     # probability mass spread over the other classes
    optimizer: str = field(default="sgd", metadata={"help": "resnet: of all parameters; airbench: of the BatchNorm "
                           "and whitening biases (--lr) and the head (--head-lr), the conv filters always use Muon "
                           "(--muon-lr): adam | adamw | sgd | rmsprop"})
    momentum: float = 0.9            # Nesterov momentum of --optimizer sgd (airbench: Muon's is 0.6)
    lr: float = 0.2                  # resnet: peak lr of the one-cycle schedule; airbench: lr of the biases per unit of summed loss
    head_lr: float = 0.67            # airbench: --optimizer lr of the linear head
    muon_lr: float = 0.24            # airbench: Muon step for conv filters (relative to the filter norm)
    weight_decay: float = 5e-4       # resnet: L2 penalty coefficient; airbench: decoupled, fraction removed per step per image
    warmup: float = 0.05             # resnet: fraction of steps warming the lr up
    whiten_bias_epochs: float = 3.0  # airbench: epochs after which the whitening bias is frozen
    crop_pad: int = 4                # random crop of the image padded by this many pixels (reflect): cifar10's --translate
    flip: bool = True                # mirror: resnet a coin flip per image; airbench alternating (both ways every 2 epochs)
    cutmix: float = 0.5              # probability of CutMix per batch
    low_res: int = field(default=0, metadata={"min": 0, "max": 31, "help": "progressive resizing: the first "
                         "epochs (--low-res-share of them) train on images scaled to this many pixels a side, 16 or "
                         "more (0: off)"})
    low_res_share: float = field(default=0.0, metadata={"min": 0, "below": 1, "help": "share of the epochs, the first "
                                 "ones rounded to whole epochs, at --low-res; the later ones, the validation and the "
                                 "test at 32x32"})
    tta: str = field(default="flip", metadata={"help": "test-time augmentation",
                                               "choices": ["none", "flip", "flip_translate"]})
    val_size: int = 0                # validation images carved from train, only watched (0: train on all 50,000)
    train_subset: int = 0            # use only this many training images (0: all; smoke runs)
    test_subset: int = 0             # evaluate on a fixed random N test images (0: all of the official test split)
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])

    def __post_init__(self):
        if 0 < self.low_res < 16:  # smaller images keep too little of a 32x32 one (and under 9 none reach the head)
            raise ConfigError(f"setting low_res: {self.low_res} is out of range (must be 0 (off) or 16 to 31)")

    @property
    def low_res_epochs(self) -> int:
        """Epochs at --low-res: the first round(share x epochs), none without --low-res."""
        return round(self.low_res_share * self.epochs) if self.low_res else 0


# The full recipe is the Config's defaults; the others change some of them. The CPU profile is
# cifar10's airbench recipe (its learning rates, decay, smoothing, augmentation) made wider and
# longer for 100 classes, its first 14 of 30 epochs on 24x24 images (progressive resizing: the same
# validation accuracy for about 0.8 of the training time). ResNet-18 trains 140-170 images/s on a
# 2-core CPU, so an hour would be only 10-12 of its epochs.
CPU = dict(arch="airbench", widths=[96, 256, 384], epochs=30, batch_size=1000, label_smoothing=0.2, lr=0.053,
           momentum=0.85, weight_decay=2e-6, crop_pad=2, cutmix=0.0, tta="flip_translate", low_res=24, low_res_share=0.47)
PROFILES = {
    "full": Profile({}, "ResNet-18, 200 epochs with CutMix (aimed at 80% test accuracy; not measured)"),
    "cpu": Profile(CPU, "airbench CNN (widths 96/256/384), 30 epochs, the first 14 on 24x24 images"),
    "quick": Profile({**CPU, **dict(widths=[16, 32, 32], epochs=2, batch_size=100, train_subset=500, val_size=100,
                                     test_subset=200, tta="flip")}, "seconds: a smoke test of the pipeline"),
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


def build_model(cfg: Config | None = None) -> nn.Module:
    cfg = cfg or Config()
    if cfg.arch == "airbench":
        return airbench.Net(cfg.widths, cfg.bn_momentum, classes=100)
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

    # model, loss and optimizers by name; each arch has its own recipe
    model = build_model(cfg)
    model.norm.set_stats(d.mean, d.std)
    model = model.to(device, memory_format=vision.memory_format(device))
    max_steps = 1 if cfg.dry_run else None
    if cfg.arch == "airbench":  # whitening filters from the first 5,000 training images; Muon + SGD, linear decay
        model.init_whiten(model.norm(vision.to_float(d.tx_train[:5000])))
        loss_fn, opts, scheds = airbench.compile(model, cfg, len(d.ty_train), max_steps=max_steps)
    else:  # Nesterov SGD (by name) with a one-cycle schedule
        loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing)
        opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay, momentum=cfg.momentum,
                             nesterov=True)
        steps = schedules.steps(len(d.ty_train), cfg.batch_size, cfg.epochs, max_steps=max_steps)
        opts, scheds = [opt], [schedules.lambda_lr(opt, schedules.one_cycle(steps, cfg.warmup, start=0.1))]

    # augmentation: mirror (airbench: alternating, each image both ways in every pair of epochs) and
    # random crop, then CutMix (targets become class probabilities: it mixes two labels)
    if cfg.arch == "airbench" and cfg.flip:
        flip_crop = airbench.alternating_flip(len(d.ty_train), cfg.crop_pad, device)
    else:
        def flip_crop(xb, yb, idx, epoch):
            return augment.translate(augment.flip(xb) if cfg.flip else xb, cfg.crop_pad, mode="reflect"), yb

    def augment_batch(xb, yb, idx, epoch):
        xb = flip_crop(xb, yb, idx, epoch)[0]
        if epoch <= cfg.low_res_epochs:  # progressive resizing: cheaper early epochs on smaller images
            xb = augment.resize(xb, cfg.low_res)
        return augment.cutmix(xb, yb, len(d.classes), cfg.cutmix)

    # train
    cpu0 = time.process_time()
    with vision.Timer(device) as t_train:
        history = loop.fit(model, d.tx_train, d.ty_train, loss_fn, opts, scheds, epochs=cfg.epochs,
                           batch_size=cfg.batch_size, transform=vision.to_float, augment=augment_batch,
                           metrics=cfg.metrics, validate=vision.validation(d.val, cfg.metrics, cfg.precision),
                           precision=cfg.precision, max_steps=max_steps, log=run.log_epoch,
                           run=run, desc=NAME)
    cpu_s = time.process_time() - cpu0

    # evaluate on the official test split; superclass accuracy from the official fine -> coarse map
    with vision.Timer(device) as t_eval:
        logits = vision.predict_logits(model, d.tx_test, cfg.tta, precision=cfg.precision)
    from ...data.cifar import COARSE_OF_FINE
    coarse_acc = float(np.mean(COARSE_OF_FINE[logits.argmax(1).numpy()] == COARSE_OF_FINE[d.y_test]))
    if cfg.arch == "airbench":
        title = "CIFAR-100: airbench CNN"
        intro = (f"An airbench-style CNN (widths {cfg.widths}, whitened 2x2 first layer) trained on CIFAR-100 with "
                 f"the `{cfg.profile}` profile: {cfg.epochs:g} epochs at batch {cfg.batch_size}, Muon (lr "
                 f"{cfg.muon_lr:g}) for conv filters, Nesterov SGD for biases (lr {cfg.lr:g}) and head (lr "
                 f"{cfg.head_lr:g}), label smoothing {cfg.label_smoothing:g}, alternating flip + {cfg.crop_pad}-pixel "
                 f"crop, CutMix probability {cfg.cutmix:g}, test-time augmentation `{cfg.tta}`.")
    else:
        title = "CIFAR-100: ResNet"
        intro = (f"A ResNet (blocks {cfg.blocks}, base width {cfg.width}) trained on CIFAR-100 with the "
                 f"`{cfg.profile}` profile: {cfg.epochs:g} epochs at batch {cfg.batch_size}, random crop + mirror, "
                 f"CutMix probability {cfg.cutmix:g}, label smoothing {cfg.label_smoothing:g}, {cfg.optimizer} "
                 f"(Nesterov) with a one-cycle lr (peak {cfg.lr:g}), test-time augmentation `{cfg.tta}`.")
    if cfg.low_res:
        intro += (f" Progressive resizing: the first {cfg.low_res_epochs} epochs trained on {cfg.low_res}x{cfg.low_res} "
                  f"images, the later ones at 32x32.")
    coarse = f"Superclass (coarse) accuracy, the fine prediction mapped to its superclass: {coarse_acc:.4f}."
    return report.conclude(run, cfg, NAME, title, intro, model, d, history, logits, t_train, t_eval,
                      cpu_s, [("Superclasses", coarse)], extra_metrics={"coarse_accuracy": coarse_acc})


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    report.add_predict_args(parser)


def predict(args) -> int:
    """Top-5 of the 100 classes for one image of any size or mode (made RGB, resized to 32x32)."""
    return report.predict_image(args, NAME, sys.modules[__name__], size=32, grey=False, mode="photo")


TASK = Task(
    name=NAME, exercise="CIFAR-100 image classification", dataset="cifar100",
    model="deep CNN: ResNet-18 with Nesterov SGD (full recipe); the airbench CNN made wider, with Muon (CPU profile)",
    headline=Headline("accuracy", "test accuracy"),
    reference=Reference("81.2% test accuracy (WRN-28-10)", 0.812, "Zagoruyko & Komodakis, BMVC 2016"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=image_page(NAME, sys.modules[__name__], size=32, grey=False, mode="photo", canvas=False),
    tuning=vision.TUNING, distributed=True, steady_shapes=True, export=export)

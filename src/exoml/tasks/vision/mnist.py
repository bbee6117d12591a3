"""MNIST digit classification with a compact CNN (two conv stages with BatchNorm, a fully
connected feature layer, a linear head).

Data: MNIST, all 60,000 training images by default (the recipe picks nothing at run time: a fixed
number of epochs and the last weights; `--val-size 5000` holds out a validation split to watch its
curves) and the official 10,000 test images, 28x28 grey. Recipe: random rotation/zoom/shift as one
batched affine warp, label smoothing, AdamW with a one-cycle learning rate (linear warm-up, linear
decay to 0); a test digit's logits are averaged with the mean logits of its two 1-pixel diagonal
shifts (`--tta translate`, chosen on validation). The full recipe also draws half of the training
digits with thinner or thicker strokes (`--stroke`), so that a digit written with a marker or
printed in a bold font is read as well as a pen-drawn one (benchmarks/bench_digits.py measures that
on digits that are not MNIST's).

Profiles (`--profile`): `full` (the default on a GPU), `cpu` (the default without one: seconds on
a 2-core CPU) and `quick` (a smoke test); measured results are in BENCHMARKS.md.

    exoml run mnist                      # the cpu profile without a GPU, the full recipe with one
    exoml run mnist --profile cpu       # the short CPU recipe
    exoml run mnist --profile full --ensemble 3   # three full-recipe networks; their mean probability
    exoml predict mnist digit.png        # any PNG/JPEG/WebP; dark-on-white digits are inverted

`--ensemble N` trains N networks in one run: the first exactly as `--seed S` alone would, network k
re-seeded with S + 1000 k (initialisation, batch order, augmentation; a `--val-size` split stays
S's), so the networks of runs with different seeds never coincide.
The run's prediction is the mean of their class probabilities (toolkit.ensemble), on the test split
and on a validation split if one is held out; the report gives each network's accuracy beside the
ensemble's.

For other tasks (the GAN's classifier score): `build_model(cfg)` returns the network; it takes
float images in [0, 1] of shape (N, 1, 28, 28), normalises them itself (the training mean/std are
buffers saved with the weights) and returns logits (N, 10); `model.features(x)` gives the
penultimate layer (N, hidden; an ensemble's concatenates its networks'). `load_classifier(run=None)`
loads a trained run's weights.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import augment, common as vision, report
from .page import image_page
from ..contract import Headline, Profile, Reference, Task
from ...toolkit import loop, schedules
from ...toolkit.ensemble import Ensemble
from ...toolkit.report import md_table
from ...toolkit.train import make_loss, make_optimizer, pick_device, seed_everything

NAME = "mnist"


@dataclass
class Config(vision.ImageCommon):
    width: int = 32                  # channels of the first conv stage, doubled in the second
    convs: int = 2                   # 3x3 conv layers per stage
    hidden: int = 256                # units of the feature layer
    dropout: float = 0.2             # before the linear head
    epochs: int = 15                 # passes over the training split
    batch_size: int = 128            # images per step
    loss: str = "cross_entropy"
    label_smoothing: float = 0.1     # probability mass spread over the other classes
    optimizer: str = "adamw"         # all parameters: adam | adamw | sgd | rmsprop
    lr: float = 3e-3                 # peak learning rate of the one-cycle schedule
    weight_decay: float = 5e-2       # AdamW decoupled decay (per unit of lr)
    warmup: float = 0.15             # fraction of the steps spent warming the lr up
    rotate: float = 10.0             # max random rotation in degrees
    zoom: float = 0.1                # max random zoom, a fraction
    shift: float = 0.1               # max random shift, a fraction of the side
    stroke: float = 0.5              # share of training digits drawn 1 px thinner or 1-2 px thicker each side
    # translate: chosen on the 5,000 validation digits (both profiles, BENCHMARKS.md), as good or better on every seed
    tta: str = field(default="translate", metadata={
        "help": "test-time augmentation: none | translate (the logits averaged with those of the 1-pixel diagonal "
                "shifts)",
        "choices": ["none", "translate"]})
    tta_pad: ClassVar[str] = "constant"  # shifted digits get black borders, as MNIST's background
    val_size: int = 0                # validation images carved from train, only watched (0: train on all 60,000)
    train_subset: int = 0            # use only this many training images (0: all; smoke runs)
    test_subset: int = 0             # evaluate on a fixed random N test images (0: all of the official test split)
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    ensemble: int = field(default=1, metadata={"min": 1, "help": "networks in one run: network 0 is the single run of "
                                               "--seed, network k is seeded seed + 1000 k; the prediction is their "
                                               "mean class probability"})


# The full recipe is the Config's defaults; the others change some of them.
CPU = dict(width=16, convs=1, hidden=128, epochs=3, rotate=0.0, zoom=0.0, shift=0.07, stroke=0.0)
PROFILES = {
    "full": Profile({}, "the accurate recipe (aimed at >= 99.75% test accuracy)"),
    "cpu": Profile(CPU, "a small CNN, 3 epochs: seconds on a 2-core CPU (aimed at >= 99.3% in <= 30 s)"),
    "quick": Profile({**CPU, **dict(width=8, hidden=32, epochs=1, train_subset=600, val_size=100, test_subset=500,
                                     batch_size=64)}, "seconds: a smoke test of the pipeline"),
}


# ---------------------------------------------------------------- model ---------------

class Net(nn.Module):
    """[conv3x3-BN-ReLU] x convs, max-pool, [conv3x3-BN-ReLU] x convs (twice the channels), max-pool,
    flatten, linear-BN-ReLU (the features), dropout, linear (the logits)."""

    def __init__(self, width: int = 32, convs: int = 2, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        self.norm = vision.Normalize(1)
        layers, c_in = [], 1
        for stage in range(2):  # 28x28 -> 14x14 -> 7x7
            c_out = width * 2 ** stage
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 7 * 7, hidden, bias=False), nn.BatchNorm1d(hidden),
                                nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, hidden) of images in [0, 1], (N, 1, 28, 28)."""
        return self.fc(self.body(self.norm(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(cfg: Config | None = None) -> Net | Ensemble:
    """The network of `cfg` (default: the full profile); with cfg.ensemble > 1, that many of them as
    one Ensemble (same inputs and outputs: logits, and `features`)."""
    cfg = cfg or Config()
    if cfg.ensemble > 1:
        return Ensemble([build_network(cfg) for _ in range(cfg.ensemble)])
    return build_network(cfg)


def build_network(cfg: Config) -> Net:
    """One network of `cfg`'s recipe (an ensemble has cfg.ensemble of them)."""
    return Net(cfg.width, cfg.convs, cfg.hidden, cfg.dropout)


def load_classifier(run: str | Path | None = None, out: str | Path = "runs", device: str = "cpu") -> Net | Ensemble:
    """A trained MNIST classifier (eval mode) from `run`, or the latest complete run under `out`."""
    from ...toolkit.weights import load_state, open_run
    run_dir, info = open_run(NAME, Path(run) if run else None, out)
    model = build_model(vision.config_from_run(Config, info))
    load_state(model, run_dir / "model.safetensors", NAME)
    return model.to(device).eval()


def export(run_dir, info):
    """`exoml export mnist`: the run's network and its test images (vision/export.py)."""
    from .export import image_classifier
    return image_classifier(sys.modules[__name__], NAME, run_dir, info, mode="digit")


# ---------------------------------------------------------------- run -----------------

def run(cfg: Config, run) -> tuple[dict, str]:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    torch.backends.cudnn.benchmark = True

    # data: uint8 on the device, statistics from the training split, explore figures
    d = vision.load_data(NAME, cfg, device)
    if run.writes:  # explore: samples, class balance, pixel statistics
        d.md += report.explore(run, d.x_train, d.y_train, d.classes, d.mean, d.std)

    # train (--ensemble N: N networks, one after the other)
    cpu0 = time.process_time()
    with vision.Timer(device) as t_train:
        members, history = [], []
        for k in range(cfg.ensemble):
            if k:  # network 0 is the single run of --seed; network k is seeded with seed + 1000 k
                seed_everything(cfg.seed + 1000 * k)
            net, rows = train_network(cfg, d, device, run, k)
            members.append(net)
            history += rows
    cpu_s = time.process_time() - cpu0
    model = members[0] if cfg.ensemble == 1 else Ensemble(members)

    # evaluate on the official test split
    with vision.Timer(device) as t_eval:
        logits = vision.predict_logits(model, d.tx_test, cfg.tta, pad_mode=cfg.tta_pad, precision=cfg.precision)
    extra, sections = ({}, []) if cfg.ensemble == 1 or not run.writes else ensemble_summary(cfg, d, members, model,
                                                                                            logits)
    intro = (f"A compact CNN ({cfg.convs} conv layer(s) per stage, width {cfg.width}) trained on MNIST with the "
             f"`{cfg.profile}` profile: {cfg.epochs:g} epochs, affine augmentation (rotation {cfg.rotate:g} deg, zoom "
             f"{cfg.zoom:g}, shift {cfg.shift:g}), stroke-width changes on {cfg.stroke:.0%} of the digits, label "
             f"smoothing {cfg.label_smoothing:g}, {cfg.optimizer} with a "
             f"one-cycle lr (peak {cfg.lr:g}), test-time augmentation `{cfg.tta}`."
             + (f" {cfg.ensemble} such networks (seeds {cfg.seed}, {cfg.seed} + 1000, ...) predict together: the mean "
                f"of their class probabilities." if cfg.ensemble > 1 else ""))
    return report.conclude(run, cfg, NAME, "MNIST: CNN digit classifier", intro, model, d, history, logits,
                      t_train, t_eval, cpu_s, sections, extra)


def train_network(cfg: Config, d, device, run, k: int = 0) -> tuple[Net, list[dict]]:
    """One network of the recipe trained on d's training split: (the network, its history rows; in
    an ensemble each row says which network, and each network has its own checkpoint)."""
    # model, loss and optimizer by name, one-cycle schedule
    model = build_network(cfg)
    model.norm.set_stats(d.mean, d.std)
    model = model.to(device, memory_format=vision.memory_format(device))
    loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    steps = schedules.steps(len(d.ty_train), cfg.batch_size, cfg.epochs, max_steps=1 if cfg.dry_run else None)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, cfg.warmup, start=0.1))

    def augment_batch(xb, yb, idx, epoch):  # digits are not mirror-symmetric: no flips
        xb = augment.stroke(xb, cfg.stroke)
        if cfg.rotate or cfg.zoom or cfg.shift:
            xb = augment.affine(xb, cfg.rotate, cfg.zoom, cfg.shift)
        return xb, yb

    one = cfg.ensemble == 1
    history = loop.fit(model, d.tx_train, d.ty_train, loss_fn, [opt], [sched], epochs=cfg.epochs,
                       batch_size=cfg.batch_size, transform=vision.to_float, augment=augment_batch,
                       metrics=cfg.metrics, validate=vision.validation(d.val, cfg.metrics, cfg.precision),
                       precision=cfg.precision, max_steps=1 if cfg.dry_run else None,
                       log=run.log_epoch if one else lambda row: run.log_epoch({"network": k, **row}), run=run,
                       checkpoint="checkpoint.safetensors" if one else f"checkpoint-{k}.safetensors",
                       desc=NAME if one else f"{NAME} {k + 1}/{cfg.ensemble}")
    return model, history if one else [{"network": k, **row} for row in history]


def ensemble_summary(cfg: Config, d, members: list[Net], ensemble: Ensemble, logits) -> tuple[dict, list]:
    """Each network's test accuracy and, where a validation split is held out, each network's and the
    ensemble's validation accuracy: metrics (val_accuracy is the ensemble's) and a report section.
    logits: the ensemble's on the test split."""
    def accuracy(model, x, y, tta):  # as the metrics measure it: a share of the images, in float64
        logits = vision.predict_logits(model, x, tta, pad_mode=cfg.tta_pad, precision=cfg.precision)
        return float((logits.argmax(1).cpu().numpy() == np.asarray(torch.as_tensor(y).cpu())).mean()) if len(y) else 0.0

    val = d.val if d.val is not None and len(d.val[1]) else None
    tests = [accuracy(m, d.tx_test, d.y_test, cfg.tta) for m in members]
    vals = [accuracy(m, val[0], val[1], "none") for m in members] if val else []  # as the history's val_accuracy
    extra = {"network_accuracy": tests, "network_accuracy_mean": float(np.mean(tests)),
             "network_accuracy_sd": float(np.std(tests, ddof=1)),
             **({"val_accuracy": accuracy(ensemble, val[0], val[1], "none"), "network_val_accuracy": vals,
                 "network_val_accuracy_mean": float(np.mean(vals))} if val else {})}
    ens_test = float((logits.argmax(1).cpu().numpy() == np.asarray(d.y_test)).mean()) if len(d.y_test) else 0.0
    names = [f"network {k} (seed {cfg.seed + 1000 * k})" for k in range(len(members))] + ["ensemble (mean probability)"]
    rows = [{"": n, "test accuracy": f"{t:.2%}"} for n, t in zip(names, tests + [ens_test])]
    where = "on the test split"
    if val:  # the validation column first: what a choice may be made on
        rows = [{"": r[""], "validation accuracy": f"{v:.2%}", "test accuracy": r["test accuracy"]}
                for r, v in zip(rows, vals + [extra["val_accuracy"]])]
        where = "on the validation split (what a choice may be made on) and on the test split"
    text = f"Each network alone and the ensemble, {where}:\n\n" + md_table(rows)
    return extra, [("Ensemble", text)]


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    report.add_predict_args(parser)


def predict(args) -> int:
    """Top-5 digits for one image. A dark digit on light paper is inverted, cropped and centred in a
    20x20 box inside 28x28, as the MNIST digits are (exoml.tasks.vision.images.load_image)."""
    return report.predict_image(args, NAME, sys.modules[__name__], size=28, grey=True, mode="digit")


TASK = Task(
    name=NAME, exercise="MNIST digit classification", dataset="mnist",
    model="CNN: two 3x3 conv stages with BatchNorm, a fully connected feature layer, a linear head",
    headline=Headline("accuracy", "test accuracy"),
    reference=Reference("99.25% test accuracy (Keras mnist_cnn example)", 0.9925, "keras.io examples"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=image_page(NAME, sys.modules[__name__], size=28, grey=True, mode="digit", canvas=True),
    tuning=vision.TUNING, distributed=True, export=export)

"""Fashion-MNIST classification with a fully connected deep network only (no convolutions:
the exercise is a DNN / MLP).

Data: Fashion-MNIST, all 60,000 training images by default (the recipe picks nothing at run time: a
fixed number of epochs and the last weights; `--val-size 5000` holds out the validation split its
settings were chosen on) and the official 10,000 test images, 28x28 grey, 10 clothing classes.
Model: flatten -> [linear-BN-ReLU-dropout] x depth -> linear. Recipe: on-device augmentation (a
left-right mirror and 1-pixel shifts in the full recipe; a random erased square is an option, off in
every profile), label smoothing, AdamW with a one-cycle lr, test-time mirror averaging.

Profiles (`--profile`): `full` (the default on a GPU; aimed at >= 91.5% test accuracy, about 6 min
on a 2-core CPU), `cpu` (the default without one: >= 89% within 2 minutes on a 2-core CPU) and
`quick` (a smoke test). The full profile was chosen on the validation split only (BENCHMARKS.md
has the study: an MLP is not translation-equivariant, so shifted garments are a harder task for it; over
20 epochs shifts cost validation accuracy, over 100 epochs 1-pixel shifts gain it: without them a
long run memorises the training images). Measured results: BENCHMARKS.md.

    exoml run fashion-mnist                    # the cpu profile without a GPU, the full recipe with one
    exoml run fashion-mnist --profile full    # the full recipe anywhere
    exoml predict fashion-mnist shirt.jpg      # any PNG/JPEG/WebP; a light background is inverted
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from . import augment, common as vision, report
from .page import image_page
from ..contract import Headline, Profile, Reference, Task
from ...toolkit import loop, schedules
from ...toolkit.train import make_loss, make_optimizer, pick_device, seed_everything

NAME = "fashion-mnist"


@dataclass
class Config(vision.ImageCommon):
    hidden: list[int] = field(default_factory=lambda: [1024, 1024], metadata={"help": "units of each hidden layer"})
    dropout: float = 0.1             # dropout after each hidden layer
    epochs: int = 100                # passes over the training split
    batch_size: int = 512            # images per step
    loss: str = "cross_entropy"
    label_smoothing: float = 0.1     # probability mass spread over the other classes
    optimizer: str = "adamw"         # all parameters: adam | adamw | sgd | rmsprop
    lr: float = 4e-3                 # peak learning rate of the one-cycle schedule
    weight_decay: float = 5e-2       # AdamW decoupled decay (per unit of lr)
    warmup: float = 0.15             # fraction of the steps spent warming the lr up
    flip: bool = True                # mirror left-right half of the training images (clothes are symmetric)
    shift: int = 1                   # max random shift in pixels (black fills the uncovered edge)
    erase: int = 0                   # side in pixels of a random blanked square
    tta: str = field(default="flip", metadata={"help": "test-time augmentation: none | flip (mean of image and mirror)",
                                               "choices": ["none", "flip"]})
    val_size: int = 0                # validation images carved from train, only watched (0: train on all 60,000)
    train_subset: int = 0            # use only this many training images (0: all; smoke runs)
    test_subset: int = 0             # evaluate on a fixed random N test images (0: all of the official test split)
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])


# The full recipe is the Config's defaults (chosen on validation, BENCHMARKS.md); the others change some.
CPU = dict(hidden=[512, 256], epochs=10, shift=0)
PROFILES = {
    "full": Profile({}, "the accurate recipe (aimed at >= 91.5% test accuracy)"),
    "cpu": Profile(CPU, "the 2-minute CPU recipe (aimed at >= 89%)"),
    "quick": Profile({**CPU, **dict(hidden=[64, 32], epochs=1, train_subset=600, val_size=100, test_subset=500,
                                     batch_size=64)}, "seconds: a smoke test of the pipeline"),
}


# ---------------------------------------------------------------- model ---------------

class MLP(nn.Module):
    """Fully connected only: normalise, flatten 784 pixels, hidden layers (linear-BN-ReLU-dropout), linear."""

    def __init__(self, hidden: list[int], dropout: float = 0.3, classes: int = 10):
        super().__init__()
        self.norm = vision.Normalize(1)
        layers, width = [nn.Flatten()], 28 * 28
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.norm(x)))


def build_model(cfg: Config | None = None) -> MLP:
    cfg = cfg or Config()
    return MLP(cfg.hidden, cfg.dropout)


def export(run_dir, info):
    """`exoml export fashion-mnist`: the run's network and its test images (vision/export.py)."""
    from .export import image_classifier
    return image_classifier(sys.modules[__name__], NAME, run_dir, info, mode="item")


# ---------------------------------------------------------------- run -----------------

def run(cfg: Config, run) -> tuple[dict, str]:
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)

    # data: uint8 on the device, statistics from the training split, explore figures
    d = vision.load_data(NAME, cfg, device)
    if run.writes:  # explore: samples, class balance, pixel statistics
        d.md += report.explore(run, d.x_train, d.y_train, d.classes, d.mean, d.std)

    # model, loss and optimizer by name, one-cycle schedule
    model = build_model(cfg)
    model.norm.set_stats(d.mean, d.std)
    model = model.to(device)
    loss_fn = make_loss(cfg.loss, label_smoothing=cfg.label_smoothing)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    steps = schedules.steps(len(d.ty_train), cfg.batch_size, cfg.epochs, max_steps=1 if cfg.dry_run else None)
    sched = schedules.lambda_lr(opt, schedules.one_cycle(steps, cfg.warmup, start=0.1))
    background = torch.zeros(1, 1, 1, 1, device=device)  # erased squares become background black

    def augment_batch(xb, yb, idx, epoch):
        if cfg.flip:
            xb = augment.flip(xb)
        xb = augment.translate(xb, cfg.shift, mode="constant")
        return augment.cutout(xb, cfg.erase, background), yb

    # train
    cpu0 = time.process_time()
    with vision.Timer(device) as t_train:
        history = loop.fit(model, d.tx_train, d.ty_train, loss_fn, [opt], [sched], epochs=cfg.epochs,
                           batch_size=cfg.batch_size, transform=vision.to_float, augment=augment_batch,
                           metrics=cfg.metrics, validate=vision.validation(d.val, cfg.metrics, cfg.precision),
                           precision=cfg.precision, max_steps=1 if cfg.dry_run else None, log=run.log_epoch,
                           run=run, desc=NAME)
    cpu_s = time.process_time() - cpu0

    # evaluate on the official test split
    with vision.Timer(device) as t_eval:
        logits = vision.predict_logits(model, d.tx_test, cfg.tta, precision=cfg.precision)
    intro = (f"A fully connected network (hidden layers {cfg.hidden}, no convolutions) trained on Fashion-MNIST with "
             f"the `{cfg.profile}` profile: {cfg.epochs:g} epochs, augmentation (mirror {cfg.flip}, shifts up to "
             f"{cfg.shift} px, erased {cfg.erase}x{cfg.erase} squares), label smoothing {cfg.label_smoothing:g}, "
             f"{cfg.optimizer} with a one-cycle lr (peak {cfg.lr:g}), test-time augmentation `{cfg.tta}`.")
    return report.conclude(run, cfg, NAME, "Fashion-MNIST: fully connected deep network", intro, model, d, history,
                      logits, t_train, t_eval, cpu_s, [])


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    report.add_predict_args(parser)


def predict(args) -> int:
    """Top-5 classes for one image: made grey, stretched to 28x28, and inverted when its border is
    light (a product photo on white), since Fashion-MNIST items are light on a black background."""
    return report.predict_image(args, NAME, sys.modules[__name__], size=28, grey=True, mode="item")


TASK = Task(
    name=NAME, exercise="Fashion-MNIST classification", dataset="fashion-mnist",
    model="fully connected deep network (hidden layers with BatchNorm and dropout)",
    headline=Headline("accuracy", "test accuracy"),
    reference=Reference("87.7% (MLPClassifier, 100 hidden units)", 0.877, "Zalando Fashion-MNIST benchmark"),
    config=Config, profiles=PROFILES, run=run, predict=predict, add_predict_args=add_predict_args,
    page=image_page(NAME, sys.modules[__name__], size=28, grey=True, mode="item", canvas=True),
    tuning=vision.TUNING, distributed=True, export=export)

"""MNIST digit generation with a DCGAN, measured by the project's own MNIST CNN (the "judge").

Data: the 60,000 MNIST training digits, scaled to [-1, 1]. The 10,000 test digits are only the
reference set of the measurements; nothing is tuned on them.

Model: DCGAN for 28x28. G: z (64 numbers) -> linear -> 4w x 7 x 7 -> transposed conv -> 2w x 14 x 14
-> transposed conv -> 1 x 28 x 28, tanh (BatchNorm + ReLU between; `--depth` adds 3x3 convs per
resolution). D mirrors it with strided convs (LeakyReLU 0.2) and a linear logit. Non-saturating BCE
(or --loss hinge), Adam with betas (0.5, 0.999) as in Radford et al. 2016. Stabilisers, each a
setting: spectral norm on D (bounds its slope, so G's gradients neither explode nor vanish),
one-sided label smoothing (real target 0.9), and an EMA of G's weights with its BatchNorm
statistics recomputed: the EMA generator is what is sampled and saved. Class-conditional by default:
G also reads the one-hot digit and D adds a projection term (Miyato & Koyama 2018), so
`exoml generate gan --digit 7` draws a chosen digit and the measured samples ask for each digit
equally often; `--conditional false` is the plain unconditional DCGAN.

Measured by the judge (a complete `mnist` run, or the mnist network trained here): FID on its
penultimate features (n_eval generated vs test digits, next to a train-vs-test floor; a 128/256-d
MNIST space, not Inception's: compare only runs with the same judge), the share of generated digits
it classifies with confidence >= 0.9 (target >= 85%), and its class histogram (every digit 7-13%).

Default recipe: conditional, width 16, depth 2, batch 64, Adam lr 1e-3 for G and D, EMA 0.999, both
lrs falling linearly to 0 over the second half, 15 epochs; chosen on CPU runs by the judge's
confidence and class shares only (which need no test digits), never FID. Trained in bf16 autocast
with channels_last where --precision auto allows (CUDA, CPUs with native bf16). Measured results:
BENCHMARKS.md.

    exoml run gan [--quick] [--conditional false]
    exoml generate gan --n 64 [--digit 7] [--run DIR]     # writes <run>/generated/<name>.png
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel

from ... import data as datasets
from . import fid
from ...toolkit import loop, report, schedules, train, weights
from ..vision.common import ImageCommon, memory_format
from .gan_page import gan_page
from ..contract import Headline, Profile, Reference, Task
from ...errors import ExomlError
from ...toolkit.runs import Run, atomic_path
from .gan_model import Discriminator, Generator, d_loss_fn, ema_multi_avg, g_loss_fn, recalibrate_bn, sample
from .gan_judge import get_judge, judge_run
from .gan_report import judge_figure, loss_figure, progression_figure, save_gif, side_by_side, tile, tile_figure, write_up

NAME = "gan"


@dataclass
class Config(ImageCommon):
    conditional: bool = field(default=True, metadata={"help": "class-conditional G and D: G draws the digit asked "
                              "for (generate --digit); false: the plain unconditional DCGAN"})
    z_dim: int = 64             # length of the noise vector z
    width: int = 16             # channels of D's first conv; G uses 4w and 2w
    depth: int = 2              # extra 3x3 conv layers per resolution in G and D (0: the plain DCGAN)
    loss: str = field(default="bce", metadata={"help": "bce (non-saturating) | hinge", "choices": ["bce", "hinge"]})
    optimizer: str = "adam"     # both networks' parameters: adam | adamw | sgd | rmsprop
    lr_g: float = 1e-3          # generator learning rate
    lr_d: float = 1e-3          # discriminator learning rate
    beta1: float = 0.5          # Adam beta1 (0.5: the DCGAN choice, less momentum for a moving target)
    beta2: float = 0.999        # Adam beta2
    batch_size: int = 64        # real digits per step (and as many generated ones)
    epochs: int = 15            # passes over the training digits
    n_train: int = 0            # training digits used (0 = all 60,000)
    real_label: float = 0.9     # target for real digits in D's BCE (1.0 = no label smoothing)
    spectral_norm: bool = True  # spectral normalisation of D's layers
    ema: float = 0.999          # per-step decay of the moving average of G's weights (0 = off: G itself)
    lr_decay: float = field(default=0.5, metadata={"min": 0, "max": 1, "help": "fraction of the steps, at the end, "
                            "over which both lrs fall linearly to 0 (0: constant lrs)"})
    grid_n: int = 16            # fixed-noise samples drawn after every epoch (progression, GIF)
    n_eval: int = 10000         # generated digits measured, and real ones on each side of the floor
    judge: str = field(default="auto", metadata={
        "help": "auto (the latest mnist run good enough to judge, else train one) | train | PATH of an mnist run"})
    judge_min_accuracy: float = field(default=0.97, metadata={
        "help": "least test accuracy of an mnist run used as the judge (a weaker one would make FID and "
                "confidence meaningless)", "min": 0, "max": 1})
    judge_epochs: float = 2.0   # epochs of the judge trained on the fly
    judge_profile: str = field(default="full", metadata={
        "help": "mnist task profile of that judge", "choices": ["full", "cpu"]})
    judge_n_train: int = 0      # training digits for that judge (0 = all)


# quick: no extra convs (depth 0), a short weight average, 6,400 digits: 800 steps, digit-like
# shapes in seconds to minutes on 2 cores; its judge is the mnist task's `cpu` network on 20,000 digits.
PROFILES = {
    "full": Profile({}, "15 epochs on all 60,000 digits, judged by the project's MNIST CNN"),
    "cpu": Profile({}, "the full recipe (bf16 where the CPU has it natively: minutes on 2 cores)"),
    "quick": Profile(dict(width=16, depth=0, batch_size=64, lr_g=1e-3, lr_d=1e-3, ema=0.99, lr_decay=0.0, epochs=8, n_train=6400,
             n_eval=5000, judge_profile="cpu", judge_n_train=20000, judge_epochs=2.0),
                     "seconds: a smoke test of the pipeline"),
}


# ---------------------------------------------------------------- run -----------------

def run(cfg: Config, run: Run) -> tuple[dict, str]:
    if cfg.judge not in ("auto", "train"):
        judge_run(cfg)  # a named judge too weak (or not an mnist run) is refused before the training
    gen = train.seed_everything(cfg.seed)
    device = train.pick_device(cfg.device)
    mnist = datasets.load("mnist")
    n = min(cfg.n_train or len(mnist.y_train), len(mnist.y_train))
    keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(mnist.y_train))[:n])
    x = torch.from_numpy(mnist.x_train[keep]).to(device)  # uint8 on the device; a batch becomes [-1, 1] floats
    y = torch.from_numpy(mnist.y_train[keep]).to(device)
    rows = [mnist.x_train[np.flatnonzero(mnist.y_train == d)[:10]] for d in range(10)]
    run.save_figure(tile_figure(np.concatenate(rows), 10, f"training digits (one row per class; {n:,} used)"),
                    "data.png")

    # channels_last and bf16 autocast (--precision auto): oneDNN's fast convolution paths on the CPU
    G = Generator(cfg.z_dim, cfg.width, cfg.conditional, cfg.depth).to(device, memory_format=memory_format(device))
    D = Discriminator(cfg.width, cfg.conditional, cfg.spectral_norm, cfg.depth).to(device, memory_format=memory_format(device))
    ema = AveragedModel(G, multi_avg_fn=ema_multi_avg(cfg.ema))  # what we sample from and save
    opt_g = train.make_optimizer(cfg.optimizer, G.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = train.make_optimizer(cfg.optimizer, D.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    d_loss, g_loss = d_loss_fn(cfg.loss, cfg.real_label), g_loss_fn(cfg.loss)
    z_fixed = torch.randn(cfg.grid_n, cfg.z_dim, generator=gen).to(device)  # the same noise every epoch
    # --precision is the training's; samples and the judge's measurements use bf16 on CUDA only
    # (never with --precision fp32): on a CPU they stay in full precision
    sampling = "fp32" if cfg.precision == "fp32" else "cuda"
    y_fixed = (torch.arange(cfg.grid_n) % 10).to(device) if cfg.conditional else None

    # constant lrs, then (with --lr-decay) a linear fall to 0: the last steps refine instead of chase
    epochs = 1 if cfg.dry_run else cfg.epochs
    max_steps = 1 if cfg.dry_run else None
    total = schedules.steps(n, cfg.batch_size, epochs, max_steps=max_steps)  # the last partial batch is dropped
    scheds = [schedules.lambda_lr(o, schedules.linear_decay(total, cfg.lr_decay)) for o in (opt_g, opt_d)]
    per_step: list[torch.Tensor] = []  # each step's statistics, on the device until the epoch ends

    def adversarial_step(xb, yb):
        """One D step (real digits up, generated ones down; G's output detached: only D learns
        here), then one G step (make the updated D call the same generated digits real), then
        the EMA of G's weights."""
        real = xb.float().div(127.5).sub(1).unsqueeze(1)
        yb = yb if cfg.conditional else None
        z = torch.randn(len(xb), cfg.z_dim, device=device)
        with train.autocast(device, cfg.precision):
            fake = G(z, yb)
            # real and generated digits in one pass of D (D has no BatchNorm: the same as two passes,
            # except that spectral norm takes one power-iteration step per pass)
            d_both = D(torch.cat([real, fake.detach()]), None if yb is None else torch.cat([yb, yb])).float()
        d_real, d_fake = d_both[:len(xb)], d_both[len(xb):]
        loss_d = d_loss(d_real, d_fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with train.autocast(device, cfg.precision):
            d_gen = D(fake, yb).float()
        loss_g = g_loss(d_gen)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema.update_parameters(G)
        stats = {"d_loss": loss_d, "g_loss": loss_g, "d_real_logit": d_real.mean(), "d_fake_logit": d_fake.mean()}
        per_step.append(torch.stack(list(stats.values())).detach())
        return stats

    # what the figures need, kept in the checkpoint so a resumed run draws them whole: every step's
    # statistics and, after every epoch, the fixed-noise samples of the EMA generator
    record = {"steps": torch.zeros(0, 4), "frames": torch.zeros(0, cfg.grid_n, 28, 28, dtype=torch.uint8)}

    def after_epoch(row):
        frame = torch.from_numpy(sample(recalibrate_bn(ema.module), z_fixed, y_fixed, precision=sampling))
        record["steps"] = torch.cat([record["steps"], torch.stack(per_step).float().cpu()])
        record["frames"] = torch.cat([record["frames"], frame[None]])
        per_step.clear()

    t_train = time.time()
    loop.fit(nn.ModuleDict({"G": G, "D": D, "ema": ema}), x, y, None, [opt_g, opt_d], scheds, epochs=epochs,
             batch_size=cfg.batch_size, step=adversarial_step, generator=gen, max_steps=max_steps,
             log=run.log_epoch, on_epoch=after_epoch, state=record, run=run, desc=NAME)
    steps, frames = record["steps"].numpy(), list(record["frames"].numpy())
    train_s = time.time() - t_train
    g_eval = recalibrate_bn(ema.module)
    run.save_weights(train.state_dict_for_save(g_eval), meta={"task": NAME, "conditional": cfg.conditional,
                                                               "z_dim": cfg.z_dim, "width": cfg.width})

    # ---- measure: n_eval generated digits against the official test digits, with the judge
    judge, judge_source = get_judge(cfg, mnist, run, device)
    n_eval = 256 if cfg.dry_run else cfg.n_eval
    n_ref = min(n_eval, len(mnist.y_test), len(mnist.y_train))
    labels = torch.arange(n_eval, device=device) % 10 if cfg.conditional else None  # 10% of each digit
    fakes = sample(g_eval, torch.randn(n_eval, cfg.z_dim, generator=gen).to(device), labels, precision=sampling)
    f_gen, p_gen = fid.judge_outputs(judge, fakes, precision=sampling)
    f_test, p_test = fid.judge_outputs(judge, mnist.x_test[:n_ref], precision=sampling)
    train_ref = np.random.default_rng(cfg.seed + 1).choice(len(mnist.y_train), n_ref, replace=False)
    f_train, _ = fid.judge_outputs(judge, mnist.x_train[train_ref], precision=sampling)
    pred, conf = p_gen.argmax(1), p_gen.max(1)
    share = np.bincount(pred, minlength=10) / len(pred)
    metrics = {"fid": fid.fid(f_gen, f_test), "fid_floor_train_vs_test": fid.fid(f_train, f_test),
               "confident_share": float((conf >= 0.9).mean()),
               "confident_share_real_test": float((p_test.max(1) >= 0.9).mean()),
               "inception_score": fid.inception_score(p_gen), "inception_score_real_test": fid.inception_score(p_test),
               "class_share_min": float(share.min()), "class_share_max": float(share.max()),
               "judge_test_accuracy": float((p_test.argmax(1) == mnist.y_test[:n_ref]).mean()),
               "n_generated": n_eval, "n_reference": n_ref, "train_s": round(train_s, 1),
               # the loop's own count: a run resumed mid-epoch has not kept that epoch's early step statistics
               "train_steps": int(run.history[-1]["step"]) if run.history else len(steps),
               "device": train.device_name(device), "judge": judge_source, "class_share": share.round(4).tolist()}
    if cfg.conditional:
        metrics["conditional_accuracy"] = float((pred == labels.cpu().numpy()).mean())
    metrics["targets_met"] = bool(metrics["confident_share"] >= 0.85 and share.min() >= 0.07 and share.max() <= 0.13)
    run.save_arrays("predictions.npz", generated=fakes, judge_probs=p_gen.astype(np.float32),
                    requested=labels.cpu().numpy() if labels is not None else np.full(n_eval, -1),
                    test_indices=np.arange(n_ref), train_indices=train_ref)
    # what the judge saw, so every figure above can be recomputed without the judge network
    run.save_arrays("judge_outputs.npz", generated_features=f_gen.astype(np.float32),
                    generated_probs=p_gen.astype(np.float32), test_features=f_test.astype(np.float32),
                    test_probs=p_test.astype(np.float32), train_features=f_train.astype(np.float32),
                    test_labels=mnist.y_test[:n_ref], train_indices=train_ref)

    # ---- show
    run.save_figure(progression_figure(frames), "progression.png")
    save_gif(run.file("progression.gif"), frames)
    run.save_figure(tile_figure(fakes[:100], 10, "generated digits (EMA generator)" +
                                (", column = requested digit" if cfg.conditional else "")), "grid_10x10.png")
    run.save_figure(side_by_side(mnist.x_test[:50], fakes[:50]), "real_vs_generated.png")
    run.save_figure(loss_figure(steps, cfg.loss), "losses.png")
    run.save_figure(judge_figure(share, conf, p_test.max(1)), "judge.png")
    intro, sections = write_up(cfg, metrics, G, D, n, epochs, len(steps), share)
    return metrics, report.render("MNIST digits from a DCGAN", intro, cfg, metrics, sections)


def export(run_dir, info):
    """`exoml export gan`: the run's EMA generator and a fixed batch of noise (gan_export.py)."""
    from .gan_export import export_run
    return export_run(NAME, run_dir, info)


# ---------------------------------------------------------------- generate ------------

def add_generate_args(parser) -> None:
    parser.add_argument("--digit", type=int, help="0-9: draw only this digit (needs a conditional run, the default)")
    parser.add_argument("--n", type=int, default=64, help="how many digits (1-1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")


def load_generator(path, info: dict, device="cpu") -> tuple[nn.Module, dict]:
    """(the run's EMA generator on `device`, the run's settings)."""
    cfg = info["config"]
    g = Generator(cfg["z_dim"], cfg["width"], cfg["conditional"], cfg.get("depth", 0))
    weights.load_state(g, path / "model.safetensors", task=NAME)
    return g.to(device).eval(), cfg


def draw(g: nn.Module, cfg: dict, n: int, digit: int | None = None, seed: int = 0) -> np.ndarray:
    """n new uint8 digits (n, 28, 28): all `digit` (a conditional run only), else free samples (a
    conditional run cycles through 0-9)."""
    if not 1 <= n <= 1000:
        raise ExomlError(f"--n must be between 1 and 1000, got {n}")
    if digit is not None and not 0 <= digit <= 9:
        raise ExomlError(f"--digit must be between 0 and 9, got {digit}")
    if digit is not None and not cfg.get("conditional"):
        raise ExomlError("this run is an unconditional GAN, it cannot draw a chosen digit: "
                         "train one without `--conditional false`, or leave out --digit")
    device = next(g.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    labels = None
    if cfg["conditional"]:
        labels = (torch.full((n,), digit) if digit is not None else torch.arange(n) % 10).to(device)
    return sample(g, torch.randn(n, cfg["z_dim"], generator=rng).to(device), labels)


def grid_columns(cfg: dict, n: int, digit: int | None) -> int:
    """Columns of a grid of n drawn digits: a conditional run's digits 0-9 in turn get a column each."""
    return min(n, 10) if cfg.get("conditional") and digit is None else int(np.ceil(np.sqrt(n)))


def generate(args) -> int:
    """`exoml generate gan --n 64 [--digit 7]`: a grid of new digits from a run's EMA generator,
    written to <run>/generated/<digitD|all|free>-n<N>-seed<S>.png (all: a conditional run's digits 0-9
    in turn, a column each; free: an unconditional run's samples)."""
    if not 1 <= args.n <= 1000:
        raise ExomlError(f"--n must be between 1 and 1000, got {args.n}")
    if args.digit is not None and not 0 <= args.digit <= 9:
        raise ExomlError(f"--digit must be between 0 and 9, got {args.digit}")
    path, info = weights.open_run(NAME, args.run, args.out)
    g, cfg = load_generator(path, info, train.pick_device(args.device))
    images = draw(g, cfg, args.n, args.digit, args.seed)
    from PIL import Image
    in_turn = cfg["conditional"] and args.digit is None  # digits 0-9 in turn: one column per digit
    big = tile(images, grid_columns(cfg, args.n, args.digit))
    kind = f"digit{args.digit}" if args.digit is not None else "all" if in_turn else "free"
    out = path / "generated" / f"{kind}-n{args.n}-seed{args.seed}.png"
    out.parent.mkdir(exist_ok=True)
    with atomic_path(out) as tmp:
        Image.fromarray(big).resize((big.shape[1] * 3, big.shape[0] * 3), Image.NEAREST).save(tmp, format="PNG")
    what = f"digit {args.digit}" if args.digit is not None else "digits 0-9 in turn" if in_turn else "free samples"
    print(f"{args.n} generated digits ({what}) from {path}\ngrid: {out}")
    return 0


TASK = Task(
    name=NAME, exercise="MNIST digit generation", dataset="mnist",
    model="class-conditional DCGAN (deeper: extra 3x3 convs), spectral norm and a projection term in D, EMA of G's weights",
    headline=Headline("fid", "FID (judge's features)", higher_is_better=False),
    reference=Reference("DCGAN digits (no standard FID on MNIST)", None, "Radford et al., ICLR 2016"),
    config=Config, profiles=PROFILES, run=run, predict=None, add_predict_args=None,
    page=gan_page(),
    generate=generate, add_generate_args=add_generate_args, export=export,
    tune_note="a GAN has no validation metric per epoch; its judge scores the samples after training")

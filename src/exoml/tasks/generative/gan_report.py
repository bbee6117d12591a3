"""The GAN task's figures and report text: digit tiles, the per-epoch progression (PNG and animated
GIF), real vs generated, the loss curves and the judge's view (class shares, confidence). Each
figure function returns a matplotlib Figure for run.save_figure, except save_gif, which writes its
file atomically; write_up returns the report's intro and sections."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ...toolkit import report  # noqa: E402
from ...toolkit.runs import atomic_path  # noqa: E402


def tile(images: np.ndarray, ncols: int, pad: int = 2) -> np.ndarray:
    """uint8 digits (N, 28, 28) -> one uint8 image, ncols per row, grey lines between them."""
    n, h, w = images.shape
    rows = -(-n // ncols)
    out = np.full((rows * (h + pad) + pad, ncols * (w + pad) + pad), 90, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return out


def tile_figure(images, ncols: int, title: str):
    t = tile(images, ncols)
    fig, ax = plt.subplots(figsize=(t.shape[1] / 45, t.shape[0] / 45 + 0.4))
    ax.imshow(t, cmap="gray", vmin=0, vmax=255)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return fig


def progression_figure(frames: list[np.ndarray], max_rows: int = 20):
    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_rows, len(frames))).round().astype(int))
    t = tile(np.concatenate([frames[i] for i in picks]), len(frames[0]))
    fig, ax = plt.subplots(figsize=(t.shape[1] / 45 + 0.6, t.shape[0] / 45 + 0.4))
    ax.imshow(t, cmap="gray", vmin=0, vmax=255)
    ax.set_yticks([2 + 30 * r + 14 for r in range(len(picks))], [f"epoch {i + 1}" for i in picks], fontsize=7)
    ax.set_xticks([])
    ax.set_title("fixed noise, after each epoch", fontsize=9)
    return fig


def save_gif(path: Path, frames: list[np.ndarray], scale: int = 3) -> None:
    from PIL import Image
    tiles = [tile(f, min(len(f), 8)) for f in frames]
    pics = [Image.fromarray(t).resize((t.shape[1] * scale, t.shape[0] * scale), Image.NEAREST) for t in tiles]
    with atomic_path(path) as tmp:
        pics[0].save(tmp, format="GIF", save_all=True, append_images=pics[1:], duration=500, loop=0)


def side_by_side(real: np.ndarray, fake: np.ndarray):
    fig, axes = plt.subplots(1, 2, figsize=(9, 5))
    for ax, ims, name in zip(axes, (real, fake), ("real (test digits)", "generated")):
        ax.imshow(tile(ims, 10), cmap="gray", vmin=0, vmax=255)
        ax.set_title(name)
        ax.axis("off")
    fig.tight_layout()
    return fig


def loss_figure(steps: np.ndarray, loss: str):
    k = max(1, len(steps) // 50)  # moving average over ~2% of the run
    smooth = lambda v: np.convolve(v, np.ones(k) / k, mode="valid")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for col, name in ((0, "D loss"), (1, "G loss")):
        a.plot(smooth(steps[:, col]), label=name)
    for col, name in ((2, "D(real)"), (3, "D(generated)")):
        b.plot(smooth(steps[:, col]), label=name)
    a.set_title(f"{loss} losses (moving average of {k} steps)")
    b.set_title("mean discriminator logit")
    for ax in (a, b):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def judge_figure(share: np.ndarray, conf_gen: np.ndarray, conf_real: np.ndarray):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.axhspan(0.07, 0.13, color="tab:green", alpha=0.15, label="target 7%-13%")
    a.bar(range(10), share, color=["tab:blue" if 0.07 <= s <= 0.13 else "tab:red" for s in share])
    a.set_xticks(range(10))
    a.set_xlabel("digit the judge sees")
    a.set_ylabel("share of generated digits")
    a.legend(fontsize=8)
    bins = np.linspace(0, 1, 21)
    b.hist(conf_real, bins, alpha=0.5, density=True, label="real test digits")
    b.hist(conf_gen, bins, alpha=0.5, density=True, label="generated")
    b.axvline(0.9, color="k", ls="--", lw=1)
    b.set_yscale("log")
    b.set_xlabel("judge's top-class probability")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_up(cfg, metrics: dict, G, D, n: int, epochs: int, steps: int, share: np.ndarray) -> tuple[str, list]:
    """The report's intro and sections (data, model, training, samples, the judge's measurements)."""
    img, m = report.img, metrics
    sections = [
        ("Data", f"{n:,} MNIST training digits, scaled to [-1, 1].\n\n{img('data.png')}"),
        ("Model", f"Generator ({sum(p.numel() for p in G.parameters()):,} parameters):\n```\n{G}\n```\n"
                  f"Discriminator ({sum(p.numel() for p in D.parameters()):,} parameters):\n```\n{D}\n```"),
        ("Training", f"{steps} steps in {m['train_s']:.0f} s on {m['device']}. Fixed noise after every "
                     f"epoch (rows, top to bottom):\n\n{img('progression.png')}\n\n"
                     f"Animated: [progression.gif](progression.gif)\n\n{img('losses.png')}"),
        ("Samples", f"{img('grid_10x10.png')}\n\n{img('real_vs_generated.png')}"),
        ("Measured by the judge", f"Judge: {m['judge']}; its accuracy on the test digits: "
         f"{m['judge_test_accuracy']:.4f}. FID {m['fid']:.2f} ({m['n_generated']:,} generated vs "
         f"{m['n_reference']:,} test digits) against a real-vs-real floor of {m['fid_floor_train_vs_test']:.2f} "
         f"({m['n_reference']:,} training vs the same test digits). Confidence >= 0.9 for {m['confident_share']:.1%} "
         f"of generated digits (target >= 85%; real test digits: {m['confident_share_real_test']:.1%}). Share per "
         f"digit (target 7%-13% each"
         + (f"; G was asked for each digit equally often, and the judge reads the asked digit in "
            f"{m['conditional_accuracy']:.1%} of them" if "conditional_accuracy" in m else "")
         + "):\n\n" + report.md_table([{str(d): f"{s:.1%}" for d, s in enumerate(share)}])
         + f"\n\nInception-style score with the judge (exp of the mean KL divergence between each digit's class "
         f"probabilities and their average; 10 at most): {m['inception_score']:.2f} for the generated digits, "
         f"{m['inception_score_real_test']:.2f} for the real test digits. The judge's features and probabilities "
         f"for the generated, test and training digits are in judge_outputs.npz: every figure here can be "
         f"recomputed from them.\n\n{img('judge.png')}")]
    decay = f", both lrs falling linearly to 0 over the last {cfg.lr_decay:.0%} of the steps" if cfg.lr_decay else ''
    intro = (f"A {'class-conditional ' if cfg.conditional else ''}DCGAN (width {cfg.width}, depth {cfg.depth}, z of "
             f"{cfg.z_dim}) trained {epochs} epoch(s) on {n:,} MNIST training digits: {cfg.loss} loss, {cfg.optimizer} "
             f"(lr G {cfg.lr_g:g}, D {cfg.lr_d:g}, betas ({cfg.beta1:g}, {cfg.beta2:g})), real label "
             f"{cfg.real_label:g}, spectral norm {'on' if cfg.spectral_norm else 'off'}, EMA of G {cfg.ema:g}{decay}. "
             f"An MNIST CNN (the judge) measures the digits: FID on its penultimate features, its confidence and its "
             f"class shares (targets: >= 85% of the digits at confidence >= 0.9, every digit 7%-13%; met: "
             f"{m['targets_met']}).")
    return intro, sections

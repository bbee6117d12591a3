"""The image tasks' figures and write-up: explore (samples, class balance, pixel statistics),
evaluate (metrics, confusion matrix, prediction grids, worst errors), `conclude` (metrics.json
fields, weights and report.md text of a finished run), and one image classified with a run's
weights (load_classifier, classify, saliency: what `exoml predict` and `exoml serve` share)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...toolkit import distributed, plots
from ...toolkit.metrics import classification_metrics
from ...toolkit.report import img, md_table
from ...toolkit.runs import Run
from .common import Timer, config_from_run, nchw, predict_logits


def conclude(run: Run, cfg, task: str, title: str, intro: str, model: nn.Module, d, history: list[dict],
             logits: torch.Tensor, train_timer: "Timer", eval_timer: "Timer", cpu_s: float,
             sections: list[tuple[str, str]], extra_metrics: dict | None = None) -> tuple[dict, str]:
    """Metrics, predictions, figures, weights and report.md text for a finished training run
    (nothing on a torchrun rank other than 0: rank 0 writes the run folder)."""
    if not run.writes:
        return {}, ""
    from ...toolkit.report import render
    from ...toolkit.train import device_name
    device = next(model.parameters()).device
    metrics, table, figures = evaluate(run, logits, d.x_test, d.y_test, d.classes, history,
                                       n_show=4 if cfg.profile == "quick" or cfg.dry_run else 16)
    metrics.update(extra_metrics or {})
    if history and "val_accuracy" in history[-1]:  # unless the task measured its own (an ensemble's)
        metrics.setdefault("val_accuracy", history[-1]["val_accuracy"])
    tta_rows = tta_on_validation(model, d, cfg)
    if tta_rows:
        metrics.update({f"val_accuracy_tta_{t}": a for t, a in tta_rows.items()})  # flat: records average numbers
        sections = [*sections, ("Test-time augmentation on validation", tta_section(tta_rows, cfg.tta))]
    metrics.update(epochs_run=history[-1]["epoch"] if history else 0, train_time_s=round(train_timer.seconds, 3),
                   eval_time_s=round(eval_timer.seconds, 3),
                   time_to_result_s=round(train_timer.seconds + eval_timer.seconds, 3),
                   train_cpu_s=round(cpu_s, 1), device=device_name(device), processes=distributed.world_size(),
                   seed=cfg.seed,
                   parameters=sum(p.numel() for p in model.parameters()))
    save_model(run, model, task, d.classes)
    timing = (f"Training took {train_timer.seconds:.1f} s and the test evaluation {eval_timer.seconds:.1f} s on "
              f"{metrics['device']} ({'CUDA events' if device.type == 'cuda' else 'wall clock'}; the process used "
              f"{cpu_s:.0f} CPU-seconds while training).\n\n{img('curves.png')}")
    report = render(title, intro, cfg, metrics, [("Data", d.md), ("Model", describe(model)), *sections,
                                                 ("Training", timing), ("Evaluation", f"{table}\n\n{figures}"),
                                                 ("Use it", f"`exoml predict {task} IMAGE --run {run.path}`")])
    return metrics, report


def tta_on_validation(model: nn.Module, d, cfg) -> dict[str, float]:
    """The final weights' validation accuracy under each test-time augmentation the task offers
    (its Config's `tta` choices): where that choice may be made. {} without a validation split.
    Not timed: one pass per view (cifar10/100: 1 + 2 + 6 passes over the held-out images)."""
    choices = next((f.metadata.get("choices", []) for f in dataclasses.fields(cfg) if f.name == "tta"), [])
    if d.val is None or not len(d.val[1]) or len(choices) < 2:
        return {}
    y = np.asarray(torch.as_tensor(d.val[1]).cpu())
    return {tta: float((predict_logits(model, d.val[0], tta, pad_mode=cfg.tta_pad, precision=cfg.precision)
                        .argmax(1).numpy() == y).mean()) for tta in choices}


def tta_section(rows: dict[str, float], used: str) -> str:
    table = md_table([{"test-time augmentation": f"`{t}`" + (" (this run's)" if t == used else ""),
                       "validation accuracy": f"{a:.2%}"} for t, a in rows.items()])
    return ("The final weights on the validation split with each test-time augmentation (`--tta`): the split "
            "such a choice is made on; the test split is scored with this run's only.\n\n" + table)


# ---------------------------------------------------------------- explore -------------

def explore(run: Run, x: np.ndarray, y: np.ndarray, classes: list[str], mean, std, per_class: int = 8) -> str:
    """samples.png, class_balance.png, pixel_stats.png; returns the report's paragraph."""
    run.save_figure(samples_figure(x, y, classes, per_class), "samples.png")
    run.save_figure(plots.class_histogram(y, classes, title="class balance (training split)"), "class_balance.png")
    run.save_figure(pixel_figure(x, mean, std), "pixel_stats.png")
    stats = ", ".join(f"{n} {m:.4f} / {s:.4f}" for n, m, s in zip(channel_names(len(mean)), mean, std))
    return (f"Pixel mean / std per channel (training split, [0, 1] units): {stats}. "
            f"These statistics normalise every input; nothing is computed from the test split.\n\n"
            f"{img('samples.png')}\n\n{img('class_balance.png')}\n\n{img('pixel_stats.png')}")


def samples_figure(x: np.ndarray, y: np.ndarray, classes: list[str], per_class: int = 8):
    """Random training images: a row per class (up to 20 classes), else one image per class in a
    10-wide mosaic with the class names underneath. One image, not one axes per sample (fast)."""
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(0)
    n_cls, (h, w) = len(classes), x.shape[1:3]
    cols = per_class if n_cls <= 20 else 1
    tiles = []
    for c in range(n_cls):
        idx = np.flatnonzero(y == c)
        chosen = rng.choice(idx, min(cols, len(idx)), replace=False) if len(idx) else []
        tiles += [x[i] for i in chosen] + [np.zeros_like(x[0])] * (cols - len(chosen))
    ncols = cols if n_cls <= 20 else 10
    nrows = int(np.ceil(len(tiles) / ncols))
    tiles += [np.zeros_like(x[0])] * (nrows * ncols - len(tiles))
    pad, label = 2, (0 if n_cls <= 20 else max(8, h // 3))  # a white strip under each tile for its name
    padded = [np.pad(t, ((pad, pad + label), (pad, pad)) + ((0, 0),) * (t.ndim - 2), constant_values=255)
              for t in tiles]
    rows = [np.concatenate(padded[r * ncols:(r + 1) * ncols], 1) for r in range(nrows)]
    mosaic = np.concatenate(rows, 0)
    th, tw = h + 2 * pad + label, w + 2 * pad
    fig, ax = plt.subplots(figsize=(1.1 * ncols + 1.2, 1.1 * nrows * th / tw))
    ax.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    if n_cls <= 20:
        ax.set_yticks([(r + 0.5) * th for r in range(n_cls)], classes, fontsize=8)
    else:
        ax.set_yticks([])
        for c in range(n_cls):
            ax.text((c % ncols + 0.5) * tw, (c // ncols) * th + h + pad + 1, classes[c][:13], ha="center",
                    va="top", fontsize=6)
    ax.set_title("random training images per class")
    fig.tight_layout()
    return fig


def channel_names(c: int) -> list[str]:
    return ["grey"] if c == 1 else ["R", "G", "B"][:c]


def pixel_figure(x: np.ndarray, mean, std):
    import matplotlib.pyplot as plt
    sample = x[np.random.default_rng(0).choice(len(x), min(500, len(x)), replace=False)]
    sample = sample[..., None] if sample.ndim == 3 else sample
    names = channel_names(sample.shape[-1])
    colors = ["gray"] if len(names) == 1 else ["tab:red", "tab:green", "tab:blue"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for c, (name, col) in enumerate(zip(names, colors)):
        a.hist(sample[..., c].ravel(), bins=64, range=(0, 255), histtype="step", color=col, label=name, density=True)
    a.set_yscale("log")
    a.set_xlabel("pixel value")
    a.set_title(f"pixel values ({len(sample):,} training images)")
    a.legend(fontsize=8)
    b.bar(names, mean, yerr=std, color=colors, capsize=6, alpha=0.8)
    b.set_ylim(0, 1)
    b.set_title("mean ± std per channel ([0, 1] units)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- evaluate ------------

def evaluate(run: Run, logits: torch.Tensor, x_test: np.ndarray, y_test: np.ndarray, classes: list[str],
             history: list[dict], n_show: int = 16) -> tuple[dict, str, str]:
    """Test metrics, predictions.npz and the figures; returns (metrics, per-class table, figures markdown)."""
    probs = torch.softmax(logits, 1).numpy()
    y_pred = probs.argmax(1)
    head, per_class, cm = classification_metrics(y_test, y_pred, classes)
    top5 = np.argsort(-probs, 1)[:, :5]
    head["top5_accuracy"] = float((top5 == np.asarray(y_test)[:, None]).any(1).mean()) if len(y_test) else 0.0
    head["test_loss"] = float(F.cross_entropy(logits, torch.as_tensor(y_test)).item()) if len(y_test) else 0.0
    run.save_arrays("predictions.npz", y_true=y_test, y_pred=y_pred, probs=probs.astype(np.float32))
    run.save_json("per_class.json", per_class)
    run.save_figure(plots.confusion_matrix(cm, classes, title="confusion matrix (test, row-normalised)"),
                    "confusion_matrix.png")
    run.save_figure(plots.history_curves(history, title="training curves"), "curves.png")
    rng = np.random.default_rng(0)
    shown = rng.choice(len(y_test), min(n_show, len(y_test)), replace=False)
    run.save_figure(plots.predictions_grid(x_test[shown], probs[shown], y_test[shown], classes, n=n_show,
                                           title="random test images: prediction, probabilities "
                                                 "(blue: true class, red: wrong prediction)"), "test_predictions.png")
    wrong = np.flatnonzero(y_pred != y_test)
    worst = wrong[np.argsort(-probs[wrong, y_pred[wrong]])][:n_show]  # the most confident mistakes
    if len(worst):
        run.save_figure(plots.predictions_grid(x_test[worst], probs[worst], y_test[worst], classes, n=n_show,
                                               title="worst errors: the most confident wrong predictions"),
                        "worst_errors.png")
    rows = per_class if len(classes) <= 20 else (sorted(per_class, key=lambda r: r["f1"])[:10]
                                                 + sorted(per_class, key=lambda r: -r["f1"])[:10])
    table = md_table(rows)
    if len(classes) > 20:
        table = "The 10 hardest and 10 easiest classes by F1 (all classes: per_class.json).\n\n" + table
    figures = "\n\n".join([img("confusion_matrix.png"), img("test_predictions.png")]
                          + ([img("worst_errors.png")] if len(worst) else []))
    return head, table, figures


def save_model(run: Run, model: nn.Module, task: str, classes: list[str], **meta) -> None:
    from ...toolkit.train import state_dict_for_save
    run.save_weights(state_dict_for_save(model), meta={"task": task, "classes": json.dumps(classes), **meta})


def describe(model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n:,} parameters.\n\n```\n{model}\n```"


# ---------------------------------------------------------------- predict -------------

def add_predict_args(parser) -> None:
    parser.add_argument("image", type=Path, help="a PNG, JPEG, WebP, ... image of any size and mode")


def prepare_image(path: Path | bytes, size: int, grey: bool, mode: str, name: str = "the upload") -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) at size x size. mode 'digit': MNIST-style (a dark-on-light scan is
    inverted, the digit cropped and centred in a 20x20 box); 'item': grey, inverted when the border is
    light (Fashion-MNIST items are light on black), stretched to the square; 'photo': plain resize.
    `path` is a file or the bytes of one (an upload called `name`)."""
    from .images import load_image
    if mode == "digit":
        return load_image(path, (size, size), grey=True, invert_light_background=True, name=name)
    arr = load_image(path, (size, size), grey=grey, name=name)
    if mode == "item":
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        arr = 255 - arr if border.mean() > 127 else arr
    return arr


def load_classifier(task: str, mod, run_dir: Path, info: dict) -> tuple[nn.Module, list[str]]:
    """(the run's network in eval mode on the CPU, its class names): what `exoml predict` and
    `exoml serve` classify with."""
    from ...toolkit.weights import load_state
    model = mod.build_model(config_from_run(mod.Config, info))
    meta = load_state(model, Path(run_dir) / "model.safetensors", task)
    classes = json.loads(meta.get("classes", "[]")) or [str(i) for i in range(model_classes(model))]
    return model.eval(), classes


def classify(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Class probabilities of one prepared uint8 image (no test-time augmentation)."""
    return torch.softmax(predict_logits(model, nchw(image[None]), tta="none"), 1)[0].numpy()


def saliency(model: nn.Module, image: np.ndarray, target: int, samples: int = 16, noise: float = 0.1,
             seed: int = 0) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): the gradient of the target class's logit with respect to the
    input pixels, averaged over `samples` copies of the image with Gaussian noise (std `noise`, in
    [0, 1] pixel units), absolute, the largest over the colour channels: an (H, W) map of the pixels
    whose change would move the answer most."""
    model.eval()
    x = nchw(image[None]).float().div(255)
    g = torch.Generator().manual_seed(seed)
    xs = (x + noise * torch.randn((samples, *x.shape[1:]), generator=g)).requires_grad_(True)
    model(xs)[:, target].sum().backward()
    return xs.grad.mean(0).abs().amax(0).numpy()


def predict_image(args, task: str, mod, size: int, grey: bool, mode: str) -> int:
    """`exoml predict TASK IMAGE`: top-5 classes of one image with the latest (or given) run's weights;
    saves <run>/predictions/<image stem>.png (the image and its probability bars)."""
    from ...toolkit.weights import open_run
    run_dir, info = open_run(task, args.run, args.out)
    model, classes = load_classifier(task, mod, run_dir, info)
    image = prepare_image(args.image, size, grey, mode)
    probs = classify(model, image)
    order = np.argsort(-probs)[:5]
    print(f"{args.image.name}: {classes[order[0]]} ({probs[order[0]]:.1%})  [run {run_dir}]")
    for rank, c in enumerate(order, 1):
        print(f"  {rank}. {classes[c]:<16} {probs[c]:.4f}")
    fig = plots.probability_bars(image, probs, classes, top=5, title=f"{args.image.name}: {classes[order[0]]} "
                                                                     f"({probs[order[0]]:.1%})")
    path = Run(run_dir).save_figure(fig, f"predictions/{Path(args.image).stem}.png")
    print(f"plot: {path}")
    return 0


def model_classes(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return last.out_features

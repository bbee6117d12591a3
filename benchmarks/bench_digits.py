"""How a trained MNIST model reads digits that are not MNIST's: printed digits in several fonts and
stroke widths (dark ink on white, as a photo of paper would be), and scikit-learn's 8x8 handwritten
digits upscaled. Each image goes through exactly what `exoml predict mnist` does to a file
(inversion of a light background, MNIST's 20x20 box and centre of mass), then the model.

    python benchmarks/bench_digits.py --run runs/mnist/RUN      # a trained run
    python benchmarks/bench_digits.py --train cpu               # train the cpu profile first (~30 s)
    python benchmarks/bench_digits.py --train full --row mnist-full-stroke0-outside-digits -- --stroke 0
                                                                # a variant: task flags after --

Prints accuracy per source and per stroke width and records it (benchmarks/results/<row>.json).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import records  # noqa: E402

FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf", "cmr10.ttf", "cmss10.ttf"]
STROKES = [0, 3, 6]        # extra outline width in pixels, at a 96-pixel font size: thin to very bold
ANGLES = [-8.0, 8.0]       # degrees: a slightly tilted page


def font_digits(folder: Path, rng: np.random.Generator) -> list[tuple[Path, int, str]]:
    """(png, label, group) for every font x digit x stroke width x angle, dark on white."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = []
    for font_name in FONTS:
        font = ImageFont.truetype(str(fonts / font_name), 96)
        for digit in range(10):
            for stroke in STROKES:
                for angle in ANGLES:
                    im = Image.new("L", (160, 160), 255)
                    ImageDraw.Draw(im).text((80 + rng.integers(-15, 16), 80 + rng.integers(-15, 16)), str(digit),
                                            font=font, fill=0, anchor="mm", stroke_width=stroke, stroke_fill=0)
                    im = im.rotate(angle, resample=Image.BILINEAR, fillcolor=255)
                    path = folder / f"font-{font_name[:-4]}-{digit}-s{stroke}-a{angle:+.0f}.png"
                    im.save(path)
                    out.append((path, digit, f"stroke {stroke}"))
    return out


def sklearn_digits(folder: Path) -> list[tuple[Path, int, str]]:
    """scikit-learn's 1,797 8x8 handwritten digits (16 grey levels, light ink on dark), upscaled 8x."""
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits()
    out = []
    for i, (img, label) in enumerate(zip(d.images, d.target)):
        arr = (img / 16 * 255).astype(np.uint8)
        path = folder / f"sk-{i}.png"
        Image.fromarray(arr).resize((64, 64), Image.BILINEAR).save(path)
        out.append((path, int(label), "sklearn 8x8"))
    return out


def evaluate(run: Path, items: list[tuple[Path, int, str]]) -> dict[str, float]:
    import torch
    from exoml.tasks.vision import mnist
    from exoml.tasks.vision.images import load_image
    model = mnist.load_classifier(run)
    x = np.stack([load_image(p, (28, 28), grey=True, invert_light_background=True) for p, _, _ in items])
    with torch.no_grad():
        pred = model(torch.from_numpy(x).float().div(255).unsqueeze(1)).argmax(1).numpy()
    y = np.array([label for _, label, _ in items])
    groups = np.array([g for _, _, g in items])
    fonts = ~np.char.startswith(groups, "sklearn")
    metrics = {"accuracy_fonts": float((pred == y)[fonts].mean()),
               "accuracy_sklearn_8x8": float((pred == y)[~fonts].mean()), "n_fonts": int(fonts.sum()),
               "n_sklearn_8x8": int((~fonts).sum())}
    for stroke in STROKES:
        sel = groups == f"stroke {stroke}"
        metrics[f"accuracy_stroke_{stroke}"] = float((pred == y)[sel].mean())
    return metrics


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, task_flags = records.split_task_flags(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a complete mnist run folder")
    src.add_argument("--train", metavar="PROFILE", help="train this mnist profile first (e.g. cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--row", default=None, help="record name (default: mnist-PROFILE-outside-digits)")
    p.add_argument("--results", type=Path, default=records.RESULTS)
    args = p.parse_args(own)
    if task_flags and (args.run or not args.row):
        p.error("task flags after -- go with --train and a --row name (the default row is the profile as it is)")
    with tempfile.TemporaryDirectory(prefix="bench-digits-") as tmp:
        return _measure(args, argv, task_flags, Path(tmp))


def _measure(args, argv: list[str], task_flags: list[str], tmp: Path) -> int:
    run = args.run
    if run is None:
        from exoml.runner import execute, task_config
        spec, cfg = task_config("mnist", ["--profile", args.train, "--seed", str(args.seed), "--out", str(tmp / "runs"),
                                          *task_flags])
        run, _ = execute(spec, cfg)
    import json
    info = json.loads((Path(run) / "config.json").read_text())
    profile = info["config"].get("profile", "default")
    rng = np.random.default_rng(args.seed)
    (tmp / "img").mkdir()
    items = font_digits(tmp / "img", rng) + sklearn_digits(tmp / "img")
    metrics = evaluate(Path(run), items)
    for k, v in metrics.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    path = records.write(args.row or f"mnist-{profile}-outside-digits", "mnist", profile,
                         "python benchmarks/bench_digits.py " + shlex.join(argv), [info["config"].get("seed", 0)],
                         [metrics], folder=args.results, kind="outside-mnist digits",
                         **({"task_flags": shlex.join(task_flags)} if task_flags else {}))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

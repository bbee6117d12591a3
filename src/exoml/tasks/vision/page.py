"""The image tasks' page in `exoml serve`: upload an image (or, for the 28x28 grey tasks, draw
one), see it as the network sees it, the top-5 classes and a saliency map. The classification is
report.py's (load_classifier, prepare_image, classify, saliency), shared with `exoml predict`."""
from __future__ import annotations

import numpy as np

from ...serve.page import BadInput, Bars, Field, Page, Picture, Verdict, heatmap, png_of_array, upscale
from . import report

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo fits; a small file that unpacks to more is refused


def check_size(data: bytes, name: str) -> None:
    """Refuse (413) an image whose header announces more than MAX_PIXELS, before it is decoded."""
    import io
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return  # not readable: report.prepare_image says so
    if w * h > MAX_PIXELS:
        raise BadInput(f"{name} is {w}x{h} pixels: at most {MAX_PIXELS // 1_000_000} megapixels", 413)


def image_page(task: str, mod, size: int, grey: bool, mode: str, canvas: bool) -> Page:
    """The page of one image task; `mod` is the task's module (its Config and build_model)."""

    def load(run_dir, info):
        return report.load_classifier(task, mod, run_dir, info)

    def fields(_state):
        how = "draw in the box (one digit, large) or upload an image" if canvas else "upload an image"
        return [Field("image", "Image", "canvas" if canvas else "file", accept=IMAGE_TYPES,
                      help=f"{how}: PNG, JPEG, WebP, GIF or BMP, any size (made {size}x{size}"
                           f"{' grey' if grey else ' RGB'})")]

    def answer(state, inputs):
        model, classes = state
        upload = inputs["image"]
        if upload is None:
            raise BadInput("no image: draw one or choose a file" if canvas else "no image: choose a file")
        check_size(upload.data, upload.filename or "the upload")
        image = report.prepare_image(upload.data, size, grey, mode, name=upload.filename or "the upload")
        probs = report.classify(model, image)
        top = np.argsort(-probs)[:5]
        sal = report.saliency(model, image, int(top[0]))
        scale = max(1, 224 // size)
        return [
            Verdict(f"{classes[top[0]]} ({probs[top[0]]:.1%})"),
            Bars("top-5 classes", [(classes[c], float(probs[c])) for c in top]),
            Picture("what the network sees", png_of_array(upscale(image, scale)), pixelated=True,
                    caption=f"after preprocessing: {size}x{size}{' grey' if grey else ' RGB'}"
                            + (", digit cropped and centred as in MNIST" if mode == "digit" else "")
                            + (", inverted to light-on-dark" if mode == "item" else "")),
            Picture(f"saliency for “{classes[top[0]]}”", png_of_array(upscale(heatmap(sal, image), scale)),
                    pixelated=True,
                    caption="SmoothGrad: the pixels whose change moves this class's score most (red), "
                            "averaged over 16 noisy copies of the input"),
        ]

    what = "a handwritten digit" if mode == "digit" else "a clothing item" if mode == "item" else "a photo"
    return Page(about=f"Classify {what} with the run's network: the image as it is fed to the network, "
                      f"the five most likely classes and a saliency map of the pixels that drove the answer.",
                load=load, fields=fields, answer=answer, submit="Classify")

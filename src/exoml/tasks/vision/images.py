"""Reading one user image for `exoml predict` and `exoml serve` (any size or mode, PNG/JPEG/WebP/...)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ExomlError


def load_image(path: str | Path | bytes, size: tuple[int, int], grey: bool, invert_light_background: bool = False,
               name: str = "the upload") -> np.ndarray:
    """uint8 array (H, W) if grey else (H, W, 3), resized to `size` (W, H). `path` is a file, or the
    bytes of one (an upload, called `name` in messages).

    MNIST-like digits are white on black. A photo or scan of a digit is usually dark ink on
    white paper: with `invert_light_background`, an image whose border is mostly light is
    inverted, so both kinds work. The digit is then placed as MNIST's were: its bounding box
    scaled to fit 20x20, centred by its centre of mass in 28x28. An image with no ink, or too
    small or thin to hold a digit, is refused rather than given a confident answer."""
    import io
    from PIL import Image, UnidentifiedImageError
    if isinstance(path, (bytes, bytearray)):
        source, label = io.BytesIO(path), name
    else:
        path = Path(path)
        if path.is_dir():
            raise ExomlError(f"{path} is a folder: give an image file")
        if not path.is_file():
            raise ExomlError(f"image not found: {path}")
        source, label = path, path.name
    try:
        with Image.open(source) as im:
            im.load()
            im = im.convert("L" if grey else "RGB") if im.mode not in ("RGBA", "LA", "P") else _flatten(im, grey)
    except PermissionError:
        raise ExomlError(f"{path}: permission denied") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ExomlError(f"{label} is not a readable image ({type(e).__name__})") from None
    arr = np.asarray(im)
    if arr.size == 0:
        raise ExomlError(f"{label} is an empty image")
    if grey and invert_light_background:
        if min(arr.shape) < MIN_DIGIT_SIDE:
            raise ExomlError(f"no digit found in {label}: {arr.shape[1]}x{arr.shape[0]} pixels is too small "
                             f"or thin to hold one (at least {MIN_DIGIT_SIDE}x{MIN_DIGIT_SIDE})")
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        if border.mean() > 127:
            arr = 255 - arr
        if (arr > INK).sum() < MIN_INK_PIXELS:
            raise ExomlError(f"no digit found in {label}: the image is blank (no strokes stand out "
                             "from the background)")
        return _centre_digit(arr, size)
    return np.asarray(Image.fromarray(arr).resize(size, Image.BILINEAR))


def _flatten(im, grey: bool):
    """Transparent pixels become white (what a viewer shows), then convert."""
    from PIL import Image
    rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("L" if grey else "RGB")


INK = 30              # grey level above which a pixel counts as a stroke (0-255, after inversion)
MIN_INK_PIXELS = 4    # fewer stroke pixels than this: a blank image
MIN_DIGIT_SIDE = 8    # pixels: a smaller or thinner image cannot hold a readable digit


def _centre_digit(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MNIST's placement: the digit's bounding box scaled (aspect kept) to fit a 20x20 box, then
    put in the 28x28 frame so that its centre of mass is the frame's centre."""
    from PIL import Image
    ys, xs = np.nonzero(arr > INK)
    arr = arr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = arr.shape
    box = (round(size[0] * 20 / 28), round(size[1] * 20 / 28))
    scale = min(box[0] / w, box[1] / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(arr).resize((new_w, new_h), Image.BILINEAR)).astype(np.float64)
    mass = small.sum()
    cy = (small.sum(axis=1) * np.arange(new_h)).sum() / mass
    cx = (small.sum(axis=0) * np.arange(new_w)).sum() / mass
    oy = int(np.clip(round((size[1] - 1) / 2 - cy), 0, size[1] - new_h))
    ox = int(np.clip(round((size[0] - 1) / 2 - cx), 0, size[0] - new_w))
    out = np.zeros((size[1], size[0]), np.uint8)
    out[oy:oy + new_h, ox:ox + new_w] = small.round().clip(0, 255).astype(np.uint8)
    return out

"""Reading one user image for `exoml predict` (any size or mode, PNG/JPEG/WebP/...)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ExomlError


def load_image(path: str | Path, size: tuple[int, int], grey: bool, invert_light_background: bool = False) -> np.ndarray:
    """uint8 array (H, W) if grey else (H, W, 3), resized to `size` (W, H).

    MNIST-like digits are white on black. A photo or scan of a digit is usually dark ink on
    white paper: with `invert_light_background`, an image whose border is mostly light is
    inverted, so both kinds work. The digit is also centred in a square with a margin, as
    in MNIST (20x20 box inside 28x28)."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise ExomlError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L" if grey else "RGB") if im.mode not in ("RGBA", "LA", "P") else _flatten(im, grey)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ExomlError(f"{path.name} is not a readable image ({type(e).__name__})") from None
    arr = np.asarray(im)
    if arr.size == 0:
        raise ExomlError(f"{path.name} is an empty image")
    if grey and invert_light_background:
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        if border.mean() > 127:
            arr = 255 - arr
        return _centre_digit(arr, size)
    return np.asarray(Image.fromarray(arr).resize(size, Image.BILINEAR))


def _flatten(im, grey: bool):
    """Transparent pixels become white (what a viewer shows), then convert."""
    from PIL import Image
    rgba = im.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("L" if grey else "RGB")


def _centre_digit(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image
    ys, xs = np.nonzero(arr > 30)
    if len(ys):
        arr = arr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = arr.shape
    side = max(h, w)
    square = np.zeros((side, side), np.uint8)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = arr
    inner = (round(size[0] * 20 / 28), round(size[1] * 20 / 28))
    small = np.asarray(Image.fromarray(square).resize(inner, Image.BILINEAR))
    out = np.zeros((size[1], size[0]), np.uint8)
    oy, ox = (size[1] - inner[1]) // 2, (size[0] - inner[0]) // 2
    out[oy:oy + inner[1], ox:ox + inner[0]] = small
    return out

"""What an ``image_stats`` worker runs: reduced-size decode and one row of statistics per image file.

Kept free of pyarrow and tqdm so that a spawned worker process starts in ~0.1 s.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from featurestore.image_measures import MEASURES, measure

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("img_missing", "img_width", "img_height", "img_aspect", "img_file_bytes",
                            *(f"img_{m}" for m in MEASURES))
OK, MISSING, CORRUPT, TOO_LARGE, OUTSIDE = 0, 1, 2, 3, 4  # OUTSIDE: a path that leaves the image root, never opened
MAX_PIXELS = 50_000_000  # header width x height above this is refused before any pixel is decoded


class ImageTooLarge(ValueError):
    """The header's width x height is above the pixel limit: the image is refused undecoded."""


def _open_header(f) -> Image.Image:
    """``Image.open`` (header only) with PIL's decompression-bomb warning as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(f)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageTooLarge(str(e)) from e


def decode_reduced(path: Path | str, size: int, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, int, int]:
    """Decode an image to RGB with its longest side at most ``size`` px.

    Returns ``(rgb (h, w, 3) uint8, original width, original height)``; the original size is
    read from the header before ``draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale (the
    smallest still >= the target), and the rest of the way is a bilinear (area) shrink.
    Raises ``ImageTooLarge`` when the header's width x height exceeds ``max_pixels`` (nothing is
    decoded: a 164 KB PNG can hold 13,000 x 13,000 pixels), ``FileNotFoundError`` or a PIL/OS
    error for an unreadable file.
    """
    with open(path, "rb") as f, _open_header(f) as im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"{width} x {height} px is over the limit of {max_pixels:,} px")
        scale = min(1.0, size / max(width, height))
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        im.draft("RGB", target)  # JPEG only; a no-op for other formats
        rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    if (rgb.shape[1], rgb.shape[0]) != target:
        shrink = cv2.INTER_AREA if rgb.shape[1] >= 2 * target[0] else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, target, interpolation=shrink)
    return rgb, width, height


def image_row(path: str | None, decode_size: int = 256, faces: bool = True, face_size: int = 192,
              max_pixels: int = MAX_PIXELS) -> tuple[int, np.ndarray]:
    """``(status, values (len(COLUMNS),) float64)`` of one image file; status OK, MISSING, CORRUPT or TOO_LARGE.

    A missing, undecodable or too large file gives ``img_missing`` = 1 and NaN everywhere else.
    """
    row = np.full(len(COLUMNS), np.nan)
    row[0] = 1.0
    try:
        nbytes = os.stat(path).st_size if path is not None else None
    except OSError:
        nbytes = None
    if nbytes is None:
        return MISSING, row
    try:
        rgb, width, height = decode_reduced(path, decode_size, max_pixels)
    except ImageTooLarge as e:
        log.debug("image_stats: refused %s: %s", path, e)
        return TOO_LARGE, row
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files; none may stop the run
        log.debug("image_stats: cannot decode %s: %s", path, e)
        return CORRUPT, row
    stats = measure(rgb, faces=faces, face_size=face_size)
    row[:5] = (0.0, width, height, width / height, nbytes)
    row[5:] = [stats[m] for m in MEASURES]
    return OK, row


def chunk_rows(paths: list[str | None], decode_size: int = 256, faces: bool = True, face_size: int = 192,
               max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Statuses ``(n,)`` int8 and values ``(n, len(COLUMNS))`` float64 of a chunk of image files."""
    values = np.empty((len(paths), len(COLUMNS)))
    statuses = np.empty(len(paths), np.int8)
    for i, p in enumerate(paths):
        statuses[i], values[i] = image_row(p, decode_size, faces, face_size, max_pixels)
    return statuses, values


def init_worker(max_pixels: int = MAX_PIXELS) -> None:
    """Pool initializer: one OpenCV thread (one process per core already) and PIL's own pixel limit = ours."""
    cv2.setNumThreads(1)
    Image.MAX_IMAGE_PIXELS = max_pixels


@contextmanager
def worker_settings(max_pixels: int = MAX_PIXELS) -> Iterator[None]:
    """Inside the block this process runs as a pool worker does (``init_worker``); both settings restored after."""
    threads, limit = cv2.getNumThreads(), Image.MAX_IMAGE_PIXELS
    init_worker(max_pixels)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)
        Image.MAX_IMAGE_PIXELS = limit

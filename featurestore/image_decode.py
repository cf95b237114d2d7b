"""What an ``image_stats`` worker runs: reduced-size decode and one row of statistics per image file.

Kept free of pyarrow and tqdm so that a spawned worker process starts in ~0.1 s.
"""

from __future__ import annotations

import logging
import os
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
OK, MISSING, CORRUPT = 0, 1, 2


def decode_reduced(path: Path | str, size: int) -> tuple[np.ndarray, int, int]:
    """Decode an image to RGB with its longest side at most ``size`` px.

    Returns ``(rgb (h, w, 3) uint8, original width, original height)``; the original size is
    read from the header before ``draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale (the
    smallest still >= the target), and the rest of the way is a bilinear (area) shrink.
    Raises ``FileNotFoundError`` or a PIL/OS error for an unreadable file.
    """
    with Image.open(path) as im:
        width, height = im.size
        scale = min(1.0, size / max(width, height))
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        im.draft("RGB", target)  # JPEG only; a no-op for other formats
        rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    if (rgb.shape[1], rgb.shape[0]) != target:
        shrink = cv2.INTER_AREA if rgb.shape[1] >= 2 * target[0] else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, target, interpolation=shrink)
    return rgb, width, height


def image_row(path: str | None, decode_size: int = 256, faces: bool = True,
              face_size: int = 192) -> tuple[int, np.ndarray]:
    """``(status, values (len(COLUMNS),) float64)`` of one image file; status OK, MISSING or CORRUPT.

    A missing or undecodable file gives ``img_missing`` = 1 and NaN everywhere else.
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
        rgb, width, height = decode_reduced(path, decode_size)
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files; none may stop the run
        log.debug("image_stats: cannot decode %s: %s", path, e)
        return CORRUPT, row
    stats = measure(rgb, faces=faces, face_size=face_size)
    row[:5] = (0.0, width, height, width / height, nbytes)
    row[5:] = [stats[m] for m in MEASURES]
    return OK, row


def chunk_rows(paths: list[str | None], decode_size: int = 256, faces: bool = True,
               face_size: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Statuses ``(n,)`` int8 and values ``(n, len(COLUMNS))`` float64 of a chunk of image files."""
    values = np.empty((len(paths), len(COLUMNS)))
    statuses = np.empty(len(paths), np.int8)
    for i, p in enumerate(paths):
        statuses[i], values[i] = image_row(p, decode_size, faces, face_size)
    return statuses, values


def init_worker() -> None:
    """Pool initializer: one process per core already, so OpenCV's own threads would oversubscribe."""
    cv2.setNumThreads(1)


@contextmanager
def single_threaded_cv2() -> Iterator[None]:
    """Run OpenCV on one thread inside the block (as the pool workers do), then restore its setting."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)

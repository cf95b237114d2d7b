"""``ChunkStats``: what an executor worker builds once and calls per chunk of image files.

Only ``featurestore.image_decode`` is imported (no pyarrow, no tqdm), so a spawned local worker
or a Ray actor starts fast.
"""

from __future__ import annotations

import numpy as np

from featurestore.image_decode import MAX_PIXELS, chunk_rows, init_worker


class ChunkStats:
    """``chunk_rows`` with fixed settings; building it applies the worker settings (``init_worker``)."""

    def __init__(self, decode_size: int = 256, faces: bool = True, face_size: int = 192,
                 max_pixels: int = MAX_PIXELS):
        init_worker(max_pixels)
        self.settings = {"decode_size": decode_size, "faces": faces, "face_size": face_size,
                         "max_pixels": max_pixels}

    def __call__(self, paths: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Statuses ``(n,)`` int8 and values ``(n, len(COLUMNS))`` float64 of a chunk, in input order."""
        return chunk_rows(paths, **self.settings)

"""Non-neural "encoders": an engineered feature table read as one vector per post.

``image_stats`` is the ``features_image_stats`` group (``featurestore.image_decode.COLUMNS``:
size, quality, colour, composition, faces), z-scored with means and SDs of the train split
only (clipped to +-``clip``; a missing value becomes 0, the train mean). It lets every
contrastive head run without CLIP weights. Its rows are not L2-normalised: they are head inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from featurestore.standardise import Standardiser
from featurestore.image_decode import COLUMNS as IMAGE_STATS_COLUMNS
from models.encoders.registry import Encoder, EncoderConfig, posts_with, register_encoder


@dataclass(frozen=True)
class TabularEncoderConfig(EncoderConfig):
    table: str = "features_image_stats"
    columns: tuple[str, ...] = IMAGE_STATS_COLUMNS
    clip: float = 5.0


def standardised_rows(paths, cfg: TabularEncoderConfig) -> np.ndarray:
    """(N, D) float32 z-scores of ``cfg.columns`` for every post (pid order), fitted on train rows only."""
    table = posts_with(paths, cfg.table, list(cfg.columns))
    split = pq.read_table(paths.table("split"), columns=["pid", "split"])
    split = pa.table({"pid": table["pid"]}).join(split, "pid", join_type="left outer").sort_by("pid")
    x = np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in cfg.columns])
    train = np.asarray(split["split"].to_pylist()) == "train"
    return Standardiser(cfg.clip).fit(x[train]).transform(x).astype(np.float32)


class TabularEncoder(Encoder):
    config: TabularEncoderConfig

    def __init__(self, config: TabularEncoderConfig):
        super().__init__(config)
        if len(config.columns) != config.dim:
            raise ValueError(f"encoder {config.name}: dim {config.dim} != {len(config.columns)} columns")
        self.device = torch.device("cpu")

    def read_inputs(self, paths) -> pa.Table:
        posts = pq.read_table(paths.table("posts"), columns=["pid", "postdate"]).sort_by("pid")
        x = standardised_rows(paths, self.config)  # (N, D)
        return posts.append_column("x", pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), self.dim))

    def preprocessor(self):
        return _row_vector

    def encode(self, items: list[np.ndarray]) -> torch.Tensor:
        return self.finish(torch.from_numpy(np.stack(items)))  # (B, D)


def _row_vector(row: dict) -> np.ndarray:
    return np.asarray(row["x"], dtype=np.float32)


register_encoder(TabularEncoderConfig(
    name="image_stats", modality="tabular", dim=len(IMAGE_STATS_COLUMNS), normalize=False, batch_size=4096,
    preprocessing="features_image_stats columns z-scored with train-split means/SDs, clipped to +-5, "
                  "missing -> 0; not L2-normalised"),
    TabularEncoder)

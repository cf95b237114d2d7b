"""Stage embed_clip: open_clip ViT-B-32 image and text embeddings (512-d, L2-normalised) of every post.

Needs a local open_clip checkpoint: `embed_clip.weights` in params.yaml (model hubs are not
used, and random weights are never used in a real run). Without one the stage is skipped with
a warning: it writes `reports/embed_clip.json` ({"skipped": true, "reason": ...}) and
`data/embeddings/clip/SKIPPED.txt`, and no table; a model that lists `embed_clip_image` /
`embed_clip_text` then stops with "not found". With weights, the image tower reads each post's
JPEG (missing image -> zero row) in `num_workers` DataLoader processes, the text tower the PPCL
text; extraction is sharded under data/embeddings/clip/{image,text}/ and resumes after a kill.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write, write_text_atomic
from featurestore.config import config_from_dict
from models.encoders.registry import MissingWeightsError, encoder_config, require_weights
from models.extraction import EmbedConfig, embed_posts
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("embed_clip",)
TOWERS = {"image": ("embed_clip_image", "clip-vit-b-32"), "text": ("embed_clip_text", "clip-vit-b-32-text")}
OUT_DIR = "data/embeddings/clip"


def run(paths: Paths, params: dict) -> dict:
    """Both towers (or the skip report); writes the tables and reports/embed_clip.json."""
    cfg = config_from_dict(EmbedConfig, PARAMS[0], params.get(PARAMS[0]))
    out_dir = paths.root / OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        require_weights(encoder_config("clip-vit-b-32", **cfg.overrides()))
    except MissingWeightsError as e:
        summary = {"skipped": True, "reason": str(e)}
        write_text_atomic(out_dir / "SKIPPED.txt", f"embed_clip was skipped: {e}\n")
        write_json(paths.reports / "embed_clip.json", summary)
        log.warning("embed_clip skipped: %s", e)
        return summary
    (out_dir / "SKIPPED.txt").unlink(missing_ok=True)
    summary: dict = {"skipped": False}
    for tower, (table, encoder) in TOWERS.items():
        step = cfg if tower == "image" else replace(cfg, num_workers=0)  # texts need no decode workers
        emb, info = embed_posts(paths, encoder, step, shard_dir=out_dir / tower)
        with atomic_write(paths.table(table)) as tmp:
            pq.write_table(emb, tmp, compression="zstd")
        summary[tower] = info
        log.info("embed_clip %s: %d posts x %d dims (%s items/s on %s)", tower, info["rows"], info["dim"],
                 info["rows_per_s"], info["device"])
    write_json(paths.reports / "embed_clip.json", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()

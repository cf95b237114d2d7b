"""The pipeline's stages in order. ``dvc.yaml`` lists the same stages (a test checks it);
``smpp run`` calls them in-process on any SMPD directory.

Optional stages (encoders and fine-tuned heads whose tables no default model reads) run only
when some model reads one of their tables, directly or through another selected optional
stage (``select_stages``). DVC makes the same choice: they live in ``pipelines/optional/dvc.yaml``, which
``dvc repro`` runs only for a stage a model stage in the root ``dvc.yaml`` depends on.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from typing import TYPE_CHECKING, Iterator

from tqdm.auto import tqdm

from featurestore.config import config_from_dict
from featurestore.executor import ComputeConfig, Executor, make_executor, use_executor
from featurestore.paths import Paths
from featurestore.table_specs import list_tables
from pipelines.stage_io import model_tables_of, stage_io, tables_at

if TYPE_CHECKING:
    from pipelines.incremental import IncrementalRun

log = logging.getLogger(__name__)

# After `simulate` (DVC only: `smpp run` reads a given SMPD directory).
STAGES = ("ingest", "split", "features_baseline", "features_user", "features_crawled", "features_ids",
          "features_temporal", "features_text", "features_image_stats", "embed_engineered", "features_history",
          "features_sequence", "train_lgbm", "embed_minilm", "embed_clip", "finetune_wrcr", "features_protoclip",
          "train_stack", "evaluate",
          "catalog")

# Stages whose tables no model reads by default; each runs only when some model (or another
# selected optional stage) reads what it writes.
OPTIONAL_STAGES = ("embed_minilm", "embed_clip", "finetune_wrcr", "features_protoclip")

# Use every label the run holds for the posts to predict: the features of later posts see the val
# labels too (point in time), and after the validation fit every model (LightGBM; each stack
# learner and quantile model) is refitted on train + val with its scaled iteration count. Test
# labels stay invisible. Holdout runs with these (benchmarks/bench_submit_like.py) measure what
# submit mode gains.
USE_ALL_LABELS = {"split": {"label_visible": ["train", "val"]}, "train_lgbm": {"refit_full": True},
                  "train_stack": {"refit_full": True}}

# What `smpp run --mode submit` changes: every labelled post trains (the last 10% by date
# early-stop and report), then the models are refitted on all of them to predict the test posts.
SUBMIT_OVERRIDES = {**USE_ALL_LABELS, "split": {"fractions": [0.9, 0.1, 0.0], **USE_ALL_LABELS["split"]}}


def stage_module(name: str):
    return importlib.import_module(f"pipelines.{name}")


def model_tables(params: dict) -> set[str]:
    """The tables the models read under ``params`` (train_lgbm's groups, every group of the stack)."""
    return model_tables_of("train_lgbm", params) | model_tables_of("train_stack", params)


def select_stages(params: dict, stages: tuple[str, ...] = STAGES) -> tuple[str, ...]:
    """``stages`` without the optional ones whose tables nothing selected reads."""
    wanted = model_tables(params)
    chosen: set[str] = set()
    while True:
        more = {s for s in OPTIONAL_STAGES if s not in chosen
                and any(t.stage == s for t in list_tables() if t.name in wanted)}
        if not more:
            break
        chosen |= more
        for s in more:  # what a chosen optional stage reads is wanted too
            wanted |= tables_at(stage_io(s, params).inputs)
    skipped = [s for s in stages if s in OPTIONAL_STAGES and s not in chosen]
    if skipped:
        log.info("optional stages not run (no model reads their tables): %s", ", ".join(skipped))
    return tuple(s for s in stages if s not in OPTIONAL_STAGES or s in chosen)


@contextlib.contextmanager
def executor_scope(params: dict) -> Iterator[Executor]:
    """The executor of the ``compute`` section, current inside the block and closed after it.

    No stage lists ``compute`` in its params: it decides where the work runs, never what a
    stage writes, so switching executors reruns nothing.
    """
    executor = make_executor(config_from_dict(ComputeConfig, "compute", params.get("compute")))
    with contextlib.closing(executor), use_executor(executor):
        yield executor


def run_stages(paths: Paths, params: dict, stages: tuple[str, ...] | None = None,
               run: "IncrementalRun | None" = None) -> dict[str, object]:
    """Run stages in order in this process (default: ``select_stages(params)``); returns each stage's result.

    With ``run`` (what ``smpp run`` passes), unchanged stages are skipped (absent from the result)
    and the run manifest records every stage (``pipelines.incremental``). The stages run under the
    executor of ``params["compute"]`` (``executor_scope``).
    """
    stages = select_stages(params) if stages is None else stages
    with executor_scope(params):
        return _run_in_order(paths, params, stages, run)


def _run_in_order(paths: Paths, params: dict, stages: tuple[str, ...], run: "IncrementalRun | None") -> dict:
    if run is not None:
        return run.run(stages)
    results = {}
    for name in tqdm(stages, desc="smpp run", unit="stage"):
        t0 = time.perf_counter()
        results[name] = stage_module(name).run(paths, params)
        log.info("stage %s done in %.1f s", name, time.perf_counter() - t0)
    return results

"""``smpp predict``: popularity of posts that are not published yet, with a prediction interval.

  smpp predict --post post.json                     one post (a JSON object) or many (a JSON array)
  smpp predict --post posts.json --out preds.csv    write pid, prediction, interval, warnings to CSV

A post is a JSON object with SMPD field names: Uid, Postdate (epoch seconds), Title, Alltags,
Mediatype, Category, Subcategory, Concept, Latitude, Longitude, Geoaccuracy, Pathalias, the
user-profile fields (photo_count, ispro, timezone_offset, photo_firstdate, ...), optional Pid,
and ``image``: the image path (relative to the SMPD directory, or absolute). Features come from
the stored user history, the train-fitted encoders and the stacked models of the last run.
Every record is checked first (``pipelines.post_input``: the rule of ingest for each field).
Output per post: pid, pred, interval_lo, interval_hi, image_found, and warnings: ';'-joined codes
image_missing, unknown_user, before_training_period, after_stored_period_by_<N>d (README).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import joblib
import polars as pl

from featurestore.config import config_from_dict
from featurestore.ingest import IngestConfig
from featurestore.paths import Paths
from models.matrix import check_columns, join_features, to_matrix
from pipelines.new_post_features import new_post_features
from pipelines.manifest import open_run
from pipelines.post_input import PostInputError, load_posts, post_warnings, validate_posts  # noqa: F401 (re-export)

log = logging.getLogger(__name__)


def predict_posts(paths: Paths, records: list[dict], params: dict) -> pl.DataFrame:
    """pid, prediction and interval columns, ``image_found`` and ``warnings`` for each record, in
    input order. Bad records raise ``PostInputError`` (naming post and field) before any work."""
    bounds = config_from_dict(IngestConfig, "ingest", params.get("ingest")).bounds()
    records = validate_posts(records, bounds)
    if not paths.stack_model.is_file():
        raise FileNotFoundError(f"{paths.stack_model} not found: run `dvc repro` or `smpp run` first")
    bundle = joblib.load(paths.stack_model)
    tables = [pl.from_arrow(t) for t in new_post_features(paths, records, bundle.feature_groups, params)]
    frame, names = join_features(tables, tables[0].select("pid"))
    check_columns(names, bundle.feature_names)
    out = pl.DataFrame({"pid": frame["pid"].to_numpy()} | bundle.predict(to_matrix(frame, names)))
    out = pl.concat([out, post_warnings(paths, records, out["pid"].to_list())], how="horizontal")
    flagged = out.filter(pl.col("warnings") != "")
    if flagged.height:
        log.warning("%d of %d post(s) with warnings (see the warnings column): %s", flagged.height, out.height,
                    ", ".join(sorted({c for w in flagged["warnings"] for c in w.split(";")})))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="smpp predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--post", type=Path, required=True, help="JSON file: one post object or an array of them")
    ap.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    ap.add_argument("--smpd-dir", type=Path, default=None,
                    help="SMPD directory of that run (image paths; default: the one its manifest records)")
    ap.add_argument("--params", type=Path, default=None,
                    help="params of that run (default: the ones its manifest records; others are refused)")
    ap.add_argument("--out", type=Path, help="write the predictions to this CSV instead of printing")
    args = ap.parse_args(argv)
    run = open_run(args.root, args.smpd_dir, args.params, need_smpd=True)  # refuses an incomplete run
    t0 = time.perf_counter()
    preds = predict_posts(Paths(root=args.root, smpd=run.smpd_dir), load_posts(args.post), run.params)
    log.info("predicted %d post(s) in %.2f s", preds.height, time.perf_counter() - t0)
    if args.out:
        preds.write_csv(args.out)
    else:
        print(preds)
    return 0

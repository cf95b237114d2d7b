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

import polars as pl

from featurestore.paths import Paths
from pipelines.post_input import PostInputError, load_posts, validate_posts  # noqa: F401 (re-export)
from pipelines.predictor import Predictor, input_bounds

log = logging.getLogger(__name__)


def predict_posts(paths: Paths, records: list, params: dict) -> pl.DataFrame:
    """pid, prediction and interval columns, ``image_found`` and ``warnings`` for each record, in
    input order. Bad records raise ``PostInputError`` (naming post and field) before any work,
    even before the model is looked for. One call = one ``Predictor``; a service keeps one."""
    validate_posts(records, input_bounds(params))
    return Predictor(paths, params).predict(records)


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
    records = load_posts(args.post)
    predictor = Predictor.open(args.root, args.smpd_dir, args.params)  # refuses an incomplete run
    t0 = time.perf_counter()
    preds = predictor.predict(records)
    log.info("predicted %d post(s) in %.2f s", preds.height, time.perf_counter() - t0)
    if args.out:
        preds.write_csv(args.out)
    else:
        print(preds)
    return 0

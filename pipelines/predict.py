"""``smpp predict``: popularity of posts that are not published yet, with a prediction interval.

  smpp predict --post post.json                     one post (a JSON object) or many (a JSON array)
  smpp predict --post posts.json --out preds.csv    write pid, prediction, interval to CSV

A post is a JSON object with SMPD field names: Uid, Postdate (epoch seconds), Title, Alltags,
Mediatype, Category, Subcategory, Concept, Latitude, Longitude, Geoaccuracy, Pathalias, the
user-profile fields (photo_count, ispro, timezone_offset, photo_firstdate, ...), optional Pid,
and ``image``: the image path (relative to the SMPD directory, or absolute). Features come from
the stored user history, the train-fitted encoders and the stacked models of the last run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import joblib
import polars as pl

from featurestore.config import load_params
from featurestore.paths import Paths
from models.matrix import check_columns, join_features, to_matrix
from pipelines.new_post_features import new_post_features

log = logging.getLogger(__name__)


def load_posts(path: Path) -> list[dict]:
    data = json.loads(Path(path).read_text())
    return [data] if isinstance(data, dict) else list(data)


def predict_posts(paths: Paths, records: list[dict], params: dict) -> pl.DataFrame:
    """pid, prediction and interval columns for each record, in input order."""
    if not paths.stack_model.is_file():
        raise FileNotFoundError(f"{paths.stack_model} not found: run `dvc repro` or `smpp run` first")
    bundle = joblib.load(paths.stack_model)
    tables = [pl.from_arrow(t) for t in new_post_features(paths, records, bundle.feature_groups, params)]
    frame, names = join_features(tables, tables[0].select("pid"))
    check_columns(names, bundle.feature_names)
    out = {"pid": frame["pid"].to_numpy()} | bundle.predict(to_matrix(frame, names))
    return pl.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="smpp predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--post", type=Path, required=True, help="JSON file: one post object or an array of them")
    ap.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    ap.add_argument("--smpd-dir", type=Path, default=None, help="SMPD directory of that run (image paths)")
    ap.add_argument("--params", type=Path, default=None, help="params of that run (default: <root>/params.yaml)")
    ap.add_argument("--out", type=Path, help="write the predictions to this CSV instead of printing")
    args = ap.parse_args(argv)
    params_file = args.params or args.root / "params.yaml"
    params = load_params(params_file) if params_file.is_file() else {}
    t0 = time.perf_counter()
    preds = predict_posts(Paths(root=args.root, smpd=args.smpd_dir), load_posts(args.post), params)
    log.info("predicted %d post(s) in %.2f s", preds.height, time.perf_counter() - t0)
    if args.out:
        preds.write_csv(args.out)
    else:
        print(preds)
    return 0

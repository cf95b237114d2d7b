"""The ``smpp`` command line: simulate data, run the pipeline on any SMPD directory, query the catalog.

  smpp simulate --posts 20000 --out data/raw/smpd     write a simulated SMPD directory
  smpp run --smpd-dir DIR --workdir W                 ingest -> ... -> submission.json, metrics.json
  smpp sql "SELECT * FROM feature_registry"           read-only SQL over the catalog
  smpp sql -f sql/label_by_category.sql --out x.csv   a named query, written to CSV/Parquet
  smpp predict --post post.json                       an unpublished post: prediction and conformal 80% interval
  smpp similar 50731 -k 10 --html similar.html       nearest posts with labels, predictions, thumbnails
  smpp errors --top 5 --html reports/errors.html      error-analysis report with thumbnails and neighbours
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from featurestore.config import load_params, merge_params
from featurestore.paths import Paths
from pipelines.stage_cli import setup_logging

log = logging.getLogger("smpp")


def _run(args: argparse.Namespace) -> int:
    from pipelines.runner import SUBMIT_OVERRIDES, run_stages

    params = load_params(args.params)
    if args.mode == "submit":
        params = merge_params(params, SUBMIT_OVERRIDES)
    paths = Paths(root=args.workdir, smpd=args.smpd_dir.resolve())
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = run_stages(paths, params)
    metrics = results["evaluate"]
    val = metrics[metrics["submitted_model"]]["val"]
    print(f"{metrics['submitted_model']}: validation SRC {val['src']:.4f}  MAE {val['mae']:.4f}  MSE {val['mse']:.4f}  (n={val['n']})")
    print(f"submission: {paths.submission}\nmetrics:    {paths.metrics}")
    return 0


def _sql(args: argparse.Namespace) -> int:
    from featurestore.catalog import load_sql, open_catalog
    from featurestore.sql_guard import ReadOnlyQueryError, query_read_only
    from pipelines.sql_output import print_table, write_result

    if (args.query is None) == (args.file is None):
        raise SystemExit("smpp sql: give either a query string or -f FILE")
    query = load_sql(args.file) if args.file else args.query
    bound = dict(p.split("=", 1) for p in args.param)
    con = open_catalog(args.root, read_only=True)
    try:
        table = query_read_only(con, query, bound or None, root=args.root)
    except ReadOnlyQueryError as e:
        print(f"smpp sql: {e}", file=sys.stderr)
        return 2
    finally:
        con.close()
    if args.out:
        write_result(table, args.out)
        print(f"{table.num_rows} rows -> {args.out}")
    else:
        print_table(table, args.max_rows)
    return 0


def _similar(args: argparse.Namespace) -> int:
    from featurestore.config import config_from_dict
    from featurestore.features_sequence import SequenceConfig
    from featurestore.retrieval import IndexConfig
    from pipelines.analysis.similar import similar_html, similar_posts
    from pipelines.sql_output import print_table

    run_params = args.root / "params.yaml"  # the run's own search settings for --before-only
    sequence = config_from_dict(SequenceConfig, "features_sequence",
                                load_params(run_params).get("features_sequence") if run_params.is_file() else None)
    df = similar_posts(args.root, args.pid, k=args.k, before_only=args.before_only, embedding=args.embedding,
                       config=IndexConfig(kind=args.index), sequence=sequence)
    print_table(df.drop("image", strict=False).to_arrow(), args.k + 1)
    if args.html:
        similar_html(df, Paths(root=args.root, smpd=args.smpd_dir).smpd_dir, args.html)
        print(f"page with thumbnails: {args.html}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smpp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("simulate", help="write a simulated SMPD directory (see `smpp simulate --help`)", add_help=False)
    sub.add_parser("errors", help="error-analysis HTML report: worst posts per label bin with images and earlier "
                                  "neighbours (see `smpp errors --help`)", add_help=False)
    sub.add_parser("predict", help="predict unpublished posts with an interval (see `smpp predict --help`)",
                   add_help=False)
    r = sub.add_parser("run", help="run the whole pipeline on an SMPD directory and write a submission")
    r.add_argument("--smpd-dir", type=Path, required=True, help="SMPD directory (either release layout)")
    r.add_argument("--workdir", type=Path, required=True, help="where tables, models and reports are written")
    r.add_argument("--params", type=Path, default=None, help="params YAML (default: built-in defaults)")
    r.add_argument("--mode", choices=("submit", "holdout"), default="submit",
                   help="submit: all labelled posts train (last 10%% by date validates), refit, predict the test "
                        "files; holdout: the params' train/val/test split, as in dvc repro (default: submit)")
    m = sub.add_parser("similar", help="the posts most similar to one post (FAISS), for error analysis")
    m.add_argument("pid", type=int, help="the post to look up")
    m.add_argument("-k", "--k", type=int, default=10, help="how many neighbours (default: 10)")
    m.add_argument("--before-only", action="store_true", help="only posts published strictly earlier")
    m.add_argument("--embedding", default="embed_engineered", help="embedding table to search (default: embed_engineered)")
    m.add_argument("--index", default="flat", choices=("flat", "hnsw", "ivfflat", "ivfpq"), help="FAISS index kind")
    m.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    m.add_argument("--smpd-dir", type=Path, default=None, help="SMPD directory (thumbnails); default: the run's")
    m.add_argument("--html", type=Path, help="also write a page with thumbnails")
    q = sub.add_parser("sql", help="run read-only SQL over the catalog (views of every table)")
    q.add_argument("query", nargs="?", help="SQL text")
    q.add_argument("-f", "--file", help="a .sql file, or the name of a query in sql/ (e.g. label_by_category)")
    q.add_argument("--root", type=Path, default=Path("."), help="work root holding data/catalog.duckdb (default: .)")
    q.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="bind $NAME in the query")
    q.add_argument("--out", type=Path, help="write the result to .csv or .parquet instead of printing")
    q.add_argument("--max-rows", type=int, default=40, help="rows to print (default: 40)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from pipelines import simulate

        setup_logging()
        simulate.main(argv[1:])
        return 0
    if argv[:1] == ["errors"]:
        from pipelines.analysis import error_report

        setup_logging()
        return error_report.main(argv[1:])
    if argv[:1] == ["predict"]:
        from pipelines import predict

        setup_logging()
        return predict.main(argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return {"run": _run, "sql": _sql, "similar": _similar}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

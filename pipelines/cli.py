"""The ``smpp`` command line: simulate data, run the pipeline on any SMPD directory, query the catalog.

  smpp simulate --posts 20000 --out data/raw/smpd     write a simulated SMPD directory
  smpp run --smpd-dir DIR --workdir W                 ingest -> ... -> submission.json, metrics/, W/run.json
  smpp run ... --executor ray --ray-address HEAD:6379  the same on a Ray cluster (README "Running on a cluster")
  smpp sql "SELECT * FROM feature_registry"           read-only SQL over the catalog
  smpp sql -f sql/label_by_category.sql --out x.csv   a named query, written to CSV/Parquet
  smpp predict --post post.json                       an unpublished post: prediction and conformal 80% interval
  smpp serve --root W --port 8000                     the same over HTTP (POST /predict, GET /similar, /health)
  smpp similar 50731 -k 10 --html similar.html       nearest posts with labels, predictions, thumbnails
  smpp errors --top 5 --html reports/errors.html      error-analysis report with thumbnails and neighbours

`smpp run` records the run in W/run.json (params, SMPD dir and fingerprint, code version, stage
status) and skips stages whose params and inputs are unchanged since the last run into W;
predict, serve, similar, errors and sql read that manifest and refuse a run that is not complete.
Expected errors (bad input files, bad params, refused runs) print one line and exit 2 (-v: with
the traceback); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from featurestore.config import ParamsError, load_params, merge_params
from featurestore.executor import ExecutorUnavailable
from featurestore.paths import Paths
from featurestore.smpd_layout import SMPDFormatError
from featurestore.sql_guard import ReadOnlyQueryError
from pipelines.manifest import RunRefused
from pipelines.post_input import PostInputError
from pipelines.stage_cli import setup_logging

log = logging.getLogger("smpp")

# Errors a user can fix from the message alone: one line, exit 2 (the traceback only with -v).
EXPECTED = (SMPDFormatError, ParamsError, FileNotFoundError, ReadOnlyQueryError, RunRefused, PostInputError,
            ExecutorUnavailable)
EXIT_EXPECTED, EXIT_INTERRUPTED = 2, 130


def _run(args: argparse.Namespace) -> int:
    from pipelines.fingerprint import FileHasher
    from pipelines.incremental import IncrementalRun, load_hash_cache
    from pipelines.manifest import check_workdir, new_manifest
    from pipelines.runner import SUBMIT_OVERRIDES, run_stages, select_stages

    params = load_params(args.params)
    if args.mode == "submit":
        params = merge_params(params, SUBMIT_OVERRIDES)
    params = compute_overrides(params, args.executor, args.ray_address)
    smpd = args.smpd_dir.resolve()
    if not smpd.is_dir():
        raise FileNotFoundError(f"--smpd-dir {args.smpd_dir}: no such directory")
    _check_sections(params, args.params)
    stages = select_stages(params)  # checks the model params before anything runs
    previous = check_workdir(args.workdir, smpd, args.force)
    args.workdir.mkdir(parents=True, exist_ok=True)
    hasher = FileHasher(load_hash_cache(args.workdir) if previous else None)
    manifest = new_manifest(smpd_dir=smpd, params=params, mode=args.mode, stages=stages, hasher=hasher)
    if previous is not None and previous.get("params") != params:
        changed = sorted(k for k in set(params) | set(previous.get("params") or {})
                         if params.get(k) != (previous.get("params") or {}).get(k))
        log.info("params changed since the last run in %s (%s): the stages they affect rerun",
                 args.workdir, ", ".join(changed))
    paths = Paths(root=args.workdir, smpd=smpd)
    results = run_stages(paths, params, stages, run=IncrementalRun(paths, params, manifest, previous, hasher))
    _print_summary(paths, results.get("evaluate"))
    return 0


def compute_overrides(params: dict, executor: str | None, ray_address: str | None) -> dict:
    """``params`` with ``--executor`` / ``--ray-address`` applied to its ``compute`` section (checked).

    A Ray run's cluster: ``--ray-address``, else ``compute.ray_address``, else ``RAY_ADDRESS`` from
    the environment; with none, a local Ray instance is started. A local run ignores ``RAY_ADDRESS``.
    """
    from featurestore.config import config_from_dict
    from featurestore.executor import ComputeConfig, make_executor

    over = {} if executor is None else {"executor": executor}
    compute = {**(params.get("compute") or {}), **over}
    if compute.get("executor", "local") != "ray":
        if ray_address:
            raise ParamsError("--ray-address needs --executor ray (or compute.executor: ray in the params)")
        if executor == "local" and compute.get("ray_address") is not None:
            over["ray_address"] = None  # --executor local: the params' cluster is not used
    elif ray_address or (compute.get("ray_address") is None and os.environ.get("RAY_ADDRESS")):
        over["ray_address"] = ray_address or os.environ["RAY_ADDRESS"]
    out = merge_params(params, {"compute": over}) if over else params
    cfg = config_from_dict(ComputeConfig, "compute", out.get("compute"))  # a bad value stops here, before any stage
    make_executor(cfg)  # Ray asked for but not installed: ExecutorUnavailable now (it connects only when used)
    return out


def _check_sections(params: dict, source: Path | None) -> None:
    """A params section no stage reads is a typo, not a setting: refuse it before anything runs."""
    from pipelines.runner import STAGES, stage_module

    # compute: which executor runs the stages (pipelines.runner); no stage's output depends on it
    known = {s for name in STAGES for s in stage_module(name).PARAMS} | {"simulate", "compute"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParamsError(f"{source}: unknown params section(s) {unknown}; known: {sorted(known)}")


def _print_summary(paths: Paths, metrics: dict | None) -> None:
    """The submitted model's validation metrics (from the evaluate stage, or its report when it was skipped)."""
    if metrics is None and paths.evaluation.is_file():
        metrics = json.loads(paths.evaluation.read_text())
    val = ((metrics or {}).get((metrics or {}).get("submitted_model"), {}) or {}).get("val") or {}
    if all(isinstance(val.get(k), (int, float)) for k in ("src", "mae", "mse")):
        print(f"{metrics['submitted_model']}: validation SRC {val['src']:.4f}  MAE {val['mae']:.4f}  "
              f"MSE {val['mse']:.4f}  (n={val.get('n')})")
    print(f"submission: {paths.submission}\nmetrics:    {paths.metrics}\nmanifest:   {paths.root / 'run.json'}")


def _sql(args: argparse.Namespace) -> int:
    from featurestore.catalog import load_sql, open_catalog
    from featurestore.sql_guard import query_read_only
    from pipelines.manifest import open_run
    from pipelines.sql_output import print_table, write_result

    if (args.query is None) == (args.file is None):
        raise SystemExit("smpp sql: give either a query string or -f FILE")
    query = load_sql(args.file) if args.file else args.query
    bound = dict(p.split("=", 1) for p in args.param)
    open_run(args.root)  # a complete run, or a one-line refusal
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
    from pipelines.manifest import open_run
    from pipelines.sql_output import print_table

    run = open_run(args.root, args.smpd_dir)
    # the run's own search settings for --before-only
    sequence = config_from_dict(SequenceConfig, "features_sequence", run.params.get("features_sequence"))
    df = similar_posts(args.root, args.pid, k=args.k, before_only=args.before_only, embedding=args.embedding,
                       config=IndexConfig(kind=args.index), sequence=sequence)
    print_table(df.drop("image", strict=False).to_arrow(), args.k + 1)
    if args.html:
        similar_html(df, run.smpd_dir, args.html)
        print(f"page with thumbnails: {args.html}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smpp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks of expected errors")
    sub = p.add_subparsers(dest="command", required=True)
    verbose = argparse.ArgumentParser(add_help=False)  # -v after the subcommand too
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    sub.add_parser("simulate", help="write a simulated SMPD directory (see `smpp simulate --help`)", add_help=False)
    sub.add_parser("errors", help="error-analysis HTML report: worst posts per label bin with images and earlier "
                                  "neighbours (see `smpp errors --help`)", add_help=False)
    sub.add_parser("predict", help="predict unpublished posts with an interval (see `smpp predict --help`)",
                   add_help=False)
    sub.add_parser("serve", help="HTTP service: /predict, /similar/{pid}, /health over a finished run (see "
                                 "`smpp serve --help`; needs the serve extra)", add_help=False)
    r = sub.add_parser("run", parents=[verbose], help="run the whole pipeline on an SMPD directory and write a submission")
    r.add_argument("--smpd-dir", type=Path, required=True, help="SMPD directory (either release layout)")
    r.add_argument("--workdir", type=Path, required=True, help="where tables, models and reports are written")
    r.add_argument("--params", type=Path, default=None, help="params YAML (default: built-in defaults)")
    r.add_argument("--force", action="store_true",
                   help="the workdir holds another run (no manifest, another SMPD directory, a DVC run): delete "
                        "its data/ and reports/ first (nothing else); without --force such a workdir is refused")
    r.add_argument("--mode", choices=("submit", "holdout"), default="submit",
                   help="submit: all labelled posts train (last 10%% by date validates), every label is visible "
                        "to the features of later posts, every model is refitted on all of them, predict the test "
                        "files; holdout: the params' train/val/test split, as in dvc repro (default: submit)")
    r.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="where per-post extraction, neighbour blocks and stack fits run (default: the params' "
                        "compute.executor, else local); ray needs the ray extra. Outputs do not depend on it")
    r.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="Ray cluster to join, e.g. HEAD_IP:6379 (default: $RAY_ADDRESS; neither: start a local "
                        "Ray instance)")
    m = sub.add_parser("similar", parents=[verbose], help="the posts most similar to one post (FAISS), for error analysis")
    m.add_argument("pid", type=int, help="the post to look up")
    m.add_argument("-k", "--k", type=int, default=10, help="how many neighbours (default: 10)")
    m.add_argument("--before-only", action="store_true", help="only posts published strictly earlier")
    m.add_argument("--embedding", default="embed_engineered", help="embedding table to search (default: embed_engineered)")
    m.add_argument("--index", default="flat", choices=("flat", "hnsw", "ivfflat", "ivfpq"), help="FAISS index kind")
    m.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    m.add_argument("--smpd-dir", type=Path, default=None,
                   help="SMPD directory (thumbnails); default: the run's, from its manifest")
    m.add_argument("--html", type=Path, help="also write a page with thumbnails")
    q = sub.add_parser("sql", parents=[verbose], help="run read-only SQL over the catalog (views of every table)")
    q.add_argument("query", nargs="?", help="SQL text")
    q.add_argument("-f", "--file", help="a .sql file, or the name of a query in sql/ (e.g. label_by_category)")
    q.add_argument("--root", type=Path, default=Path("."), help="work root holding data/catalog.duckdb (default: .)")
    q.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="bind $NAME in the query")
    q.add_argument("--out", type=Path, help="write the result to .csv or .parquet instead of printing")
    q.add_argument("--max-rows", type=int, default=40, help="rows to print (default: 40)")
    return p


def _dispatch(argv: list[str], verbose: bool) -> int:
    if argv[:1] == ["simulate"]:
        from pipelines import simulate

        setup_logging(verbose)
        simulate.main(argv[1:])
        return 0
    if argv[:1] == ["errors"]:
        from pipelines.analysis import error_report

        setup_logging(verbose)
        return error_report.main(argv[1:])
    if argv[:1] == ["predict"]:
        from pipelines import predict

        setup_logging(verbose)
        return predict.main(argv[1:])
    if argv[:1] == ["serve"]:
        try:
            from pipelines import serve
        except ModuleNotFoundError as e:  # fastapi and uvicorn are the optional extra `serve`
            if e.name not in ("fastapi", "uvicorn"):
                raise
            raise SystemExit(f"smpp serve: {e.name} is not installed: pip install 'smpp[serve]'") from None
        setup_logging(verbose)
        return serve.main(argv[1:])
    args = build_parser().parse_args((["-v"] if verbose else []) + argv)
    setup_logging(args.verbose)
    return {"run": _run, "sql": _sql, "similar": _similar}[args.command](args)


def _verbose_flags(argv: list[str]) -> tuple[bool, list[str]]:
    """(whether -v/--verbose was given, before or after the subcommand; argv without the leading ones)."""
    i = 0
    while i < len(argv) and argv[i] in ("-v", "--verbose"):
        i += 1
    return i > 0 or any(a in ("-v", "--verbose") for a in argv[i + 1:]), argv[i:]


def main(argv: list[str] | None = None) -> int:
    """``smpp``: expected errors print one line and return 2 (with -v also the traceback); Ctrl-C returns 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose, argv = _verbose_flags(argv)
    command = argv[0] if argv else ""
    try:
        return _dispatch(argv, verbose)
    except KeyboardInterrupt:
        print(f"smpp {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EXPECTED as e:
        if verbose:
            traceback.print_exc()
        print(f"smpp {command}: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_EXPECTED
    except SystemExit as e:
        if isinstance(e.code, str):  # a subcommand's own one-line refusal
            if verbose:
                traceback.print_exc()
            print(e.code, file=sys.stderr)
            return EXIT_EXPECTED
        raise


if __name__ == "__main__":
    sys.exit(main())

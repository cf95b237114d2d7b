"""Error analysis of the stacked model (``smpp errors``): tables of errors and a static HTML report.

``error_tables`` computes, from ``predictions_stack`` and the ingest tables, the metrics per split
and per learner, MAE and bias (mean of pred - label) per label bin and per category/subcategory,
and the worst over- and under-predictions per label bin. ``render_error_report`` writes one HTML
file that opens offline: SVG charts, thumbnails as data URIs, and for every worst post its k most
similar posts published strictly earlier.

Neighbours are, by default, the earlier posts each post's sequence features were computed from
(``featurestore.features_sequence.stored_neighbours``): the report shows what the model saw.
Labels are shown whatever their visibility: this is for looking at errors, not for features.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

import polars as pl

from featurestore.catalog import load_sql, open_tables
from featurestore.features_sequence import stored_neighbours
from models.evaluation import SPLITS, model_metrics, split_metrics
from models.metrics import metrics_by_bin
from featurestore.paths import Paths
from pipelines.analysis import html_kit as H
from pipelines.analysis.posts import describe_posts
from pipelines.manifest import RunRefused, open_run

log = logging.getLogger(__name__)

DEFAULT_BINS = (1, 3, 5, 7, 9, 11, 13, 17)
NeighbourFn = Callable[[list[int], int], dict[int, list[tuple[int, float]]]]


# ---------------------------------------------------------------- tables

def _metrics_frame(metrics: dict[str, dict], key: str) -> pl.DataFrame:
    return pl.DataFrame([{key: k, **v} for k, v in metrics.items()]).select(key, "n", "src", "mae", "mse", "bias")


def overall_metrics(preds: pl.DataFrame) -> pl.DataFrame:
    """split, n, src, mae, mse, bias of the stack for each labelled split."""
    return _metrics_frame(split_metrics(preds, bias=True), "split")


def learner_table(preds: pl.DataFrame, split: str) -> pl.DataFrame:
    """model (stack, then each base learner), n, src, mae, mse, bias on one split."""
    return _metrics_frame({m: v[split] for m, v in model_metrics(preds, splits=(split,), bias=True).items()}, "model")


def bin_metrics(preds: pl.DataFrame, split: str, bins: tuple[float, ...]) -> pl.DataFrame:
    """bin, lo, hi, n, mae, bias of ``pred`` per label bin [lo, hi) on one split."""
    part = preds.filter((pl.col("split") == split) & pl.col("label").is_not_null() & pl.col("pred").is_not_null())
    rows = metrics_by_bin(part["label"].to_numpy(), part["pred"].to_numpy(), [float(b) for b in bins])
    schema = {"bin": pl.String, "lo": pl.Float64, "hi": pl.Float64, "n": pl.Int64, "mae": pl.Float64,
              "bias": pl.Float64}
    return pl.DataFrame(rows, schema=schema).select(pl.lit(split).alias("split"), pl.all())


def error_tables(root: Path, split: str = "test", bins: tuple[float, ...] = DEFAULT_BINS, top: int = 5,
                 top_categories: int = 20) -> dict[str, pl.DataFrame]:
    """Every table of the report for ``split`` of the work root's stacked predictions.

    Keys: overall (per split), learners (per model on ``split``), by_bin, by_category,
    by_subcategory (the ``top_categories`` most frequent), worst (``top`` over- and
    under-predictions per label bin: lo, hi, bin, direction, rank, pid, uid, postdate, date,
    category, subcategory, concept, title, label, pred, error, image, image_exists).
    Errors are pred - label in label units (log2 views/day).
    """
    if list(bins) != sorted(set(bins)) or len(bins) < 2:
        raise ValueError(f"bins must be at least two increasing edges; got {bins}")
    paths = Paths(root=Path(root))
    stack = paths.table("predictions_stack")
    if not stack.is_file():
        raise FileNotFoundError(f"{stack} does not exist: run `dvc repro` (stage train_stack) first")
    preds = pl.read_parquet(stack)
    con = open_tables(paths.root)
    try:
        cats = con.sql(load_sql("error_by_category"), params={"split": split, "top": top_categories}).pl()
        edges = {"lo": [float(b) for b in bins[:-1]], "hi": [float(b) for b in bins[1:]]}
        worst = con.sql(load_sql("worst_posts"), params={"split": split, "top": top, **edges}).pl()
    finally:
        con.close()
    names = {float(lo): f"[{lo:g},{hi:g})" for lo, hi in zip(bins[:-1], bins[1:])}
    worst = worst.with_columns(
        bin=pl.col("lo").replace_strict(names, return_dtype=pl.String),
        date=pl.from_epoch("postdate", time_unit="s").dt.strftime("%Y-%m-%d %H:%M"))
    return {"overall": overall_metrics(preds), "learners": learner_table(preds, split),
            "by_bin": bin_metrics(preds, split, tuple(bins)),
            "by_category": cats.filter(pl.col("level") == "category").drop("level", "subcategory"),
            "by_subcategory": cats.filter(pl.col("level") == "subcategory").drop("level"),
            "worst": worst}


# ---------------------------------------------------------------- report

def _earlier_only(query: dict[int, int | None], found: dict[int, list[tuple[int, float]]],
                  details: dict[int, dict], k: int) -> dict[int, list[dict]]:
    """Neighbour records per query pid, keeping only posts published strictly before the query."""
    out = {}
    for q, when in query.items():
        keep = []
        for pid, sim in found.get(q, []):
            d = details.get(int(pid))
            if d is None or when is None or d["postdate"] is None or d["postdate"] >= when or pid == q:
                continue
            keep.append({**d, "similarity": float(sim)})
        if len(keep) < len(found.get(q, [])):
            log.warning("post %s: %d neighbours dropped (not strictly earlier or unknown)", q,
                        len(found.get(q, [])) - len(keep))
        out[q] = keep[:k]
    return out


def _thumbs(details: dict[int, dict], smpd_dir: Path | None, px: int) -> dict[int, str | None]:
    """pid -> thumbnail data URI (None when there is no readable image)."""
    return {pid: H.thumbnail_uri(Path(smpd_dir) / d["image"], px) if smpd_dir and d.get("image") else None
            for pid, d in details.items()}


def render_error_report(tables: dict[str, pl.DataFrame], root: Path, smpd_dir: Path | None, out_file: Path,
                        neighbours: NeighbourFn | None = None, k: int = 5, thumb_px: int = 160) -> Path:
    """Write the static HTML report of ``tables`` (from ``error_tables``) to ``out_file``; returns it.

    smpd_dir: the SMPD directory image paths are relative to (None: no thumbnails).
    neighbours: ``(pids, k) -> {pid: [(pid, similarity)]}``; default: the stored neighbours of the sequence
    features (``stored_neighbours``), i.e. the earlier posts the model saw.
    Neighbours not published strictly earlier than their query post are dropped.
    """
    worst = tables["worst"]
    query = {int(r["pid"]): r["postdate"] for r in worst.select("pid", "postdate").iter_rows(named=True)}
    try:
        find = neighbours or (lambda pids, n: stored_neighbours(Paths(root=Path(root)), pids, n))
        found = find(list(query), k) if query and k > 0 else {}
    except FileNotFoundError as e:
        log.warning("no neighbours: %s", e)
        found = {}
    nb_pids = sorted({int(p) for lst in found.values() for p, _ in lst} | set(query))
    details = {int(r["pid"]): r for r in describe_posts(root, nb_pids).iter_rows(named=True)}
    nbs = _earlier_only(query, found, details, k)
    uris = _thumbs(details, smpd_dir, thumb_px)
    edges = tables["by_bin"].select("lo", "hi").rows()
    split = tables["by_bin"]["split"][0]
    test = tables["overall"].filter(pl.col("split") == split).row(0, named=True)
    headline = (f"Split <b>{H.esc(split)}</b>: SRC {H.num(test['src'])}, MAE {H.num(test['mae'])}, "
                f"MSE {H.num(test['mse'])}, bias (pred - label) {H.num(test['bias'], signed=True)} "
                f"over {test['n']} posts.")
    body = H.overview_sections(tables) + [H.worst_sections(edges, worst, uris, nbs, k)]
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(H.page("Error analysis: stacked popularity model", headline, body, thumb_px), encoding="utf-8")
    return out_file


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smpp errors", description="Error-analysis report of the stacked model: metrics per split, MAE and "
        "bias per label bin and per category (SVG charts), and the worst over-/under-predictions of each label "
        "bin with their image and their k most similar earlier posts. Writes one HTML file that opens offline.")
    p.add_argument("--root", type=Path, default=Path("."), help="work root holding data/ (default: .)")
    p.add_argument("--smpd-dir", type=Path, default=None,
                   help="SMPD directory the image paths are relative to (default: the run's, from its manifest)")
    p.add_argument("--split", default="test", choices=SPLITS, help="split to analyse (default: test)")
    p.add_argument("--top", type=int, default=5, help="worst posts per label bin and direction (default: 5)")
    p.add_argument("--k", type=int, default=5, help="earlier neighbours shown per post (default: 5; 0: none)")
    p.add_argument("--bins", type=float, nargs="+", default=list(DEFAULT_BINS), metavar="EDGE",
                   help="label bin edges, bins are [lo, hi) (default: 1 3 5 7 9 11 13 17)")
    p.add_argument("--thumb-px", type=int, default=160, help="thumbnail size in pixels (default: 160)")
    p.add_argument("--html", type=Path, default=Path("reports/errors.html"),
                   help="output HTML file (default: reports/errors.html)")
    return p


def main(argv: list[str] | None = None, neighbours: NeighbourFn | None = None) -> int:
    """``smpp errors``: compute the tables, write the report, print where it went."""
    args = build_parser().parse_args(argv)
    if args.top < 1 or args.k < 0 or args.thumb_px < 8:
        raise SystemExit("smpp errors: --top must be >= 1, --k >= 0 and --thumb-px >= 8")
    try:
        run = open_run(args.root, args.smpd_dir)  # a complete run; its SMPD dir unless --smpd-dir
        tables = error_tables(args.root, args.split, tuple(args.bins), args.top)
    except (FileNotFoundError, RunRefused) as e:
        raise SystemExit(f"smpp errors: {e}") from None
    smpd = run.smpd_dir
    try:
        out = render_error_report(tables, args.root, smpd, args.html, neighbours, args.k, args.thumb_px)
    except ValueError as e:  # e.g. more neighbours asked for than the sequence features stored
        raise SystemExit(f"smpp errors: {e}") from None
    row = tables["overall"].filter(pl.col("split") == args.split).row(0, named=True)
    print(f"{args.split}: SRC {row['src']:.4f}  MAE {row['mae']:.4f}  bias {row['bias']:+.4f}  (n={row['n']})")
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB, {tables['worst'].height} worst posts)")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())

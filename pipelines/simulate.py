"""Stage simulate: write the embedded default data set, a simulated SMPD directory (2022+ layout).

Writes OUT/train_allmetadata_json/, OUT/test_allmetadata_json/, OUT/train/<Uid>/<Pid>.jpg,
OUT/test/<Uid>/<Pid>.jpg, OUT/user_additional.txt (crawled user statistics) and an oracle
Parquet file beside OUT (hidden test labels, noise-free expected labels, planted effects).

Examples:
  python -m pipelines.simulate                      # params.yaml `simulate:` -> data/raw/smpd
  python -m pipelines.simulate --posts 20000 --out /tmp/smpd
  python -m pipelines.simulate --posts 486194 --no-images --out /tmp/full   # real-size metadata
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from featurestore.config import load_params
from featurestore.simulate import SimConfig, simulate_smpd

log = logging.getLogger(__name__)
DEFAULT_OUT = Path("data/raw/smpd")
DEFAULT_PARAMS = Path("params.yaml")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=None,
                   help="YAML whose `simulate:` section gives the SimConfig; flags below override it "
                        "(default: params.yaml when run with no arguments at all, else built-in defaults)")
    p.add_argument("--out", type=Path, default=None, help=f"SMPD directory to write (default: {DEFAULT_OUT})")
    p.add_argument("--oracle", type=Path, default=None,
                   help="oracle Parquet path (default: <OUT>.oracle.parquet, beside the SMPD directory)")
    p.add_argument("--posts", type=int, default=None, help="total posts, train + test (default: 32000)")
    p.add_argument("--seed", type=int, default=None, help="random seed; same seed = byte-identical files (default: 42)")
    p.add_argument("--no-images", dest="images", action="store_false", default=None,
                   help="list image paths but write no JPEGs (fast; for large benchmarks)")
    p.add_argument("--image-size", type=int, default=None, help="longest image side in px (default: 320)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes encoding JPEGs; does not change the output (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def resolve_config(args: argparse.Namespace, no_args: bool) -> SimConfig:
    """SimConfig from the params file's `simulate:` section (if any), then explicit flags."""
    params_path = args.params
    if params_path is None and no_args and DEFAULT_PARAMS.is_file():
        params_path = DEFAULT_PARAMS
    section = load_params(params_path).get("simulate") if params_path is not None else None
    cfg = SimConfig.from_dict(section)
    flags = {"posts": args.posts, "seed": args.seed, "images": args.images, "image_size": args.image_size,
             "workers": args.workers}
    overrides = {k: v for k, v in flags.items() if v is not None}
    if args.quiet:
        overrides["progress"] = False
    return dataclasses.replace(cfg, **overrides)


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, simulate, log a one-line summary; returns the summary dict."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    cfg = resolve_config(args, no_args=not argv)
    out = args.out if args.out is not None else DEFAULT_OUT
    summary = simulate_smpd(out, cfg, args.oracle)
    log.info("simulate: %d posts (%d train, %d test), %d users, %d images -> %s in %.1f s; "
             "train label mean %.2f sd %.2f; oracle SRC %.3f -> %s",
             summary["posts"], summary["train_posts"], summary["test_posts"], summary["users"],
             summary["images_written"], out, summary["seconds_total"], summary["label_mean"], summary["label_sd"],
             summary["oracle_src"], summary["oracle_path"])
    return summary


if __name__ == "__main__":
    main()

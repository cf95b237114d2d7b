"""The thin shell every stage module shares: argument parsing, logging, params loading, JSON output."""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from pathlib import Path
from typing import Callable

from featurestore.atomic import write_text_atomic
from featurestore.config import load_params
from featurestore.paths import Paths


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _finite(obj: object) -> object:
    """NaN/inf -> None, recursively (JSON has no NaN; DVC and browsers reject it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: object) -> None:
    """Pretty, key-sorted JSON with NaN as null (stable bytes for DVC and git diffs)."""
    write_text_atomic(path, json.dumps(_finite(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def stage_main(doc: str, run: Callable[[Paths, dict], object], argv: list[str] | None = None) -> tuple[Paths, Path]:
    """Parse ``--root/--params/--smpd-dir``, load params and call ``run(paths, params)``; returns (paths, params file).

    A stage run on its own changes a recorded run: the root's manifest is marked ``incomplete``
    first (the ``catalog`` stage, last in ``dvc repro``, records the run again).
    """
    from pipelines.manifest import mark_incomplete
    from pipelines.runner import executor_scope

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="work root holding data/ and reports/ (default: .)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params YAML (default: params.yaml)")
    parser.add_argument("--smpd-dir", type=Path, default=None,
                        help="SMPD input directory (default: <root>/data/raw/smpd, the simulated set)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    params = load_params(args.params) if args.params.is_file() else {}
    paths = Paths(root=args.root, smpd=args.smpd_dir)
    mark_incomplete(args.root, _stage_name(doc))
    with executor_scope(params):  # `compute.executor` (local or ray): where the work runs, never what it writes
        run(paths, params)
    return paths, args.params


def _stage_name(doc: str) -> str:
    """``features_text`` from a stage docstring ``Stage features_text: ...``."""
    m = re.match(r"\s*Stage (\w+)", doc or "")
    return m.group(1) if m else "a stage"

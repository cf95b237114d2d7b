"""The optional ``features_protoclip`` stage's effect on the reference LightGBM.

    python -m benchmarks.bench_protoclip_stage [--root .]      # a work root after `dvc repro`

Runs the stage with params.yaml's ``features_protoclip`` section, then fits ``train_lgbm`` (its
params) on the default groups with and without ``features_protoclip``; prints val/test SRC and MAE.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from featurestore.config import config_from_dict, load_params
from featurestore.paths import Paths
from models.evaluation import split_metrics
from models.train_gbdt import TrainConfig, fit_predict
from pipelines import features_protoclip
from pipelines.model_inputs import load_inputs


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    params, paths = load_params(args.params), Paths(root=args.root)
    t0 = time.perf_counter()
    info = features_protoclip.run(paths, params)
    out = {"stage_seconds": round(time.perf_counter() - t0, 1), "head_val": info["head_metrics"]["val"]}
    base = config_from_dict(TrainConfig, "train_lgbm", params.get("train_lgbm"))
    for name, groups in (("default", base.feature_groups), ("+protoclip", base.feature_groups + ("features_protoclip",))):
        frame, names, _, _ = load_inputs(paths, groups)
        preds, _, _ = fit_predict(frame, names, replace(base, feature_groups=groups))
        m = split_metrics(preds)
        out[name] = {s: {k: round(m[s][k], 4) for k in ("src", "mae")} for s in ("val", "test")}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

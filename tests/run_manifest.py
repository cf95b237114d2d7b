"""Helpers for tests of runs and their manifest.

``write_complete_manifest``: a complete-run manifest for work roots that tests build by hand (stage
by stage, or table by table). The readers (``smpp predict/similar/errors/sql``) refuse a root
without one; such tests record it as a finished run, as ``smpp run`` or ``dvc repro`` would.

``small_run``: a tiny simulated SMPD set, fast params (LightGBM + XGBoost stack, one thread) and
one ``smpp run`` of it, for the manifest, skip and error tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import cli
from pipelines.manifest import VERSION, write_manifest

FAST_RUN = {"train_stack": {"learners": ["lgbm", "xgboost"], "n_folds": 2,
                            "learner_params": {"lgbm": {"n_estimators": 60, "num_threads": 1},
                                               "xgboost": {"n_estimators": 60, "nthread": 1}}},
            "train_lgbm": {"n_estimators": 120, "num_threads": 1},
            "features_image_stats": {"workers": 1, "progress": False}}


def write_complete_manifest(root: Path, params: dict | None = None, smpd_dir: Path | None = None) -> dict:
    root = Path(root)
    smpd = Path(smpd_dir) if smpd_dir is not None else root / "data/raw/smpd"
    m = {"manifest_version": VERSION, "created_by": "test", "status": "complete", "mode": "test",
         "smpd_dir": str(smpd.resolve()), "params": params or {}, "inputs": None, "code": None,
         "failed_stage": None, "error": None, "stages": {}}
    write_manifest(root, m)
    return m


def smpp_run(smpd: Path, work: Path, params_file: Path, *extra: str) -> int:
    return cli.main(["run", "--smpd-dir", str(smpd), "--workdir", str(work), "--params", str(params_file), *extra])


def manifest(work: Path) -> dict:
    return json.loads((Path(work) / "run.json").read_text())


def ran(work: Path) -> set[str]:
    """The stages the last run into ``work`` ran (not skipped)."""
    return {s for s, r in manifest(work)["stages"].items() if r["status"] == "done"}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)  # copy2: modification times kept
    return dst


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """(smpd dir, params file, work dir of one complete `smpp run` in submit mode). Never modify these."""
    d = tmp_path_factory.mktemp("small")
    smpd = d / "smpd"
    simulate_smpd(smpd, SimConfig(posts=600, seed=3, image_size=32, workers=1, progress=False))
    params = d / "fast.yaml"
    params.write_text(json.dumps(FAST_RUN))  # JSON is YAML
    assert smpp_run(smpd, d / "w", params) == 0
    return smpd, params, d / "w"

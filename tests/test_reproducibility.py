"""Reproducibility across CPU types (README, "Reproducibility").

1. The text SVD does not depend on the BLAS kernels: the same features built with OpenBLAS's
   oldest x86-64 kernels (``OPENBLAS_CORETYPE=Prescott``, in a child process) differ from this
   CPU's in at most a few values by one float32 ulp. The solver used before (randomized SVD on
   float32 TF-IDF) is the control: under the same emulation most of its values differ.
2. Metrics: every stored float feature the model reads, moved by a relative 1e-6 (seeded
   noise; another CPU's rounding differences are smaller), moves val/test SRC and MAE by less
   than the README's tolerance, and shuffling the same features moves them by more (the check
   can fail). A tiny perturbation changes some split or early-stopping point, and from there on
   a GBDT differs the way a reseeded one does, so the tolerance is the size of that seed noise
   and depends on the scale: the default stack on the default 32k-post set (``slow``), and a
   single LightGBM on a 16k-post set (fast).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from featurestore.features_text import TextConfig, _documents, _read, text_features
from featurestore.paths import Paths
from featurestore.simulate import SimConfig, simulate_smpd
from models.evaluation import split_metrics
from pipelines import (embed_engineered, features_baseline, features_crawled, features_history, features_sequence,
                       features_temporal, features_text, features_user, ingest, split, train_lgbm, train_stack)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
EMULATED_BLAS = {"OPENBLAS_CORETYPE": "Prescott"}


@pytest.fixture(scope="module")
def text_root(tmp_path_factory) -> Paths:
    root = tmp_path_factory.mktemp("repro_text")
    simulate_smpd(root / "smpd", SimConfig(posts=1500, seed=3, images=False, progress=False))
    paths = Paths(root=root / "work", smpd=root / "smpd")
    params = {"ingest": {"check_images": False}}
    ingest.run(paths, params)
    split.run(paths, params)
    return paths


def _svd_columns(table) -> np.ndarray:
    return np.column_stack([table[c].to_numpy() for c in table.column_names if c.startswith("text_svd_")])


def _previous_solver(paths: Paths) -> np.ndarray:
    """(N, 32) text SVD as built before: randomized SVD (7 power iterations) on float32 TF-IDF."""
    df = _read(paths.root)
    docs = _documents(df)
    train = [d for d, t in zip(docs, (df["split"] == "train").to_numpy()) if t]
    tfidf = TfidfVectorizer(min_df=3, sublinear_tf=True, token_pattern=r"(?u)\b\w\w+\b", dtype=np.float32)
    svd = TruncatedSVD(32, algorithm="randomized", n_iter=7, random_state=42).fit(tfidf.fit_transform(train))
    return svd.transform(tfidf.transform(docs)).astype(np.float64)


def _blas_kernels() -> list[str]:
    from threadpoolctl import threadpool_info

    return sorted(f"{i.get('internal_api')}:{i.get('architecture')}" for i in threadpool_info()
                  if i.get("user_api") == "blas")


def _child(root: str, out: str) -> None:
    """Run in the emulating child process: both solvers' values and the BLAS kernels it used."""
    paths = Paths(root=Path(root))
    np.savez(out, current=_svd_columns(text_features(paths, TextConfig())), previous=_previous_solver(paths),
             kernels=json.dumps(_blas_kernels()))


def _float32_ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.spacing(np.abs(a).astype(np.float32)).astype(np.float64)


def test_text_svd_does_not_depend_on_the_blas_kernels(text_root, tmp_path):
    out = tmp_path / "child.npz"
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_reproducibility as t; "
            f"t._child({str(text_root.root)!r}, {str(out)!r})")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=os.environ | EMULATED_BLAS, check=True, timeout=300)
    child = np.load(out)
    if json.loads(str(child["kernels"])) == _blas_kernels():
        pytest.skip("OPENBLAS_CORETYPE changed no BLAS kernel here (no DYNAMIC_ARCH OpenBLAS): nothing to compare")

    current = _svd_columns(text_features(text_root, TextConfig()))
    differ = current != child["current"]
    assert differ.mean() <= 1e-3, f"{differ.sum()} of {differ.size} text_svd values depend on the BLAS kernels"
    assert _float32_ulps(current, child["current"]).max() <= 1.0
    # the control: the previous solver's values do move under the same emulation
    assert (_previous_solver(text_root) != child["previous"]).mean() > 0.5


# ---------------------------------------------------------------- 2. metrics under 1e-6 noise

FEATURE_TABLES = ("features_baseline", "features_user", "features_crawled", "features_temporal", "features_text",
                  "features_history")
TOLERANCE = {"src": 0.005, "mae": 0.015}  # README: the default stack on the default 32k-post set
SINGLE_LGBM_TOLERANCE = 0.04             # README: one LightGBM, 16k posts (4,560 val / test posts)
FAST_LGBM = {"feature_groups": list(FEATURE_TABLES), "learning_rate": 0.1, "n_estimators": 400,
             "early_stopping_rounds": 50, "num_threads": 1}


def _pipeline_state(root: Path, sim: SimConfig, fractions: tuple[float, ...], sequence: bool) -> Paths:
    """Simulated posts without images -> ingest, split and the feature tables (+ FAISS sequence features)."""
    simulate_smpd(root / "smpd", sim)
    paths = Paths(root=root / "work", smpd=root / "smpd")
    params = {"ingest": {"check_images": False}, "split": {"fractions": list(fractions)},
              "embed_engineered": {"image_weight": 0.0}}
    stages = [ingest, split, features_baseline, features_user, features_crawled, features_temporal, features_text,
              features_history] + ([embed_engineered, features_sequence] if sequence else [])
    for stage in stages:
        stage.run(paths, params)
    return paths


def _perturbed(paths: Paths, dst: Path, tables: tuple[str, ...], move) -> Paths:
    """A copy of the run at ``dst`` whose stored float columns of ``tables`` are ``move(values, rng)``."""
    shutil.copytree(paths.root, dst)
    out = Paths(root=dst, smpd=paths.smpd)
    rng = np.random.default_rng(0)
    for name in tables:
        table = pq.read_table(out.table(name))
        for i, field in enumerate(table.schema):
            if pa.types.is_floating(field.type):
                col = table.column(i)
                x = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN, kept null below
                moved = pa.array(move(x, rng), field.type, mask=col.is_null().to_numpy(zero_copy_only=False))
                table = table.set_column(i, field, moved)
        pq.write_table(table, out.table(name))
    return out


def _relative_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x * (1 + 1e-6 * rng.uniform(-1, 1, len(x)))


def _shuffled(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(x)


def _moves(a: dict, b: dict) -> dict[str, float]:
    return {f"{s}_{m}": abs(b[s][m] - a[s][m]) for s in ("val", "test") for m in ("src", "mae")}


def _lgbm_metrics(paths: Paths) -> dict:
    train_lgbm.run(paths, {"train_lgbm": FAST_LGBM})
    return split_metrics(pl.read_parquet(paths.table("predictions")), splits=("val", "test"))


@pytest.fixture(scope="module")
def lgbm_run(tmp_path_factory) -> Paths:
    # 16k posts, 5% in the unlabelled test files; 40/30/30 split -> 6,080 train, 4,560 val, 4,560 test
    sim = SimConfig(posts=16000, seed=5, images=False, test_fraction=0.05, progress=False)
    return _pipeline_state(tmp_path_factory.mktemp("repro_lgbm"), sim, (0.4, 0.3, 0.3), sequence=False)


def test_lgbm_metrics_move_less_than_the_tolerance_under_1e6_noise(lgbm_run, tmp_path):
    base = _lgbm_metrics(lgbm_run)
    noisy = _moves(base, _lgbm_metrics(_perturbed(lgbm_run, tmp_path / "noisy", FEATURE_TABLES, _relative_noise)))
    assert max(noisy.values()) < SINGLE_LGBM_TOLERANCE, noisy
    shuffled = _moves(base, _lgbm_metrics(_perturbed(lgbm_run, tmp_path / "shuffled", FEATURE_TABLES, _shuffled)))
    assert max(shuffled.values()) > SINGLE_LGBM_TOLERANCE, shuffled  # the check can fail


@pytest.mark.slow
def test_default_stack_metrics_move_less_than_the_tolerance_under_1e6_noise(tmp_path):
    """The README's numbers: the default 32k-post simulated set (no images: no image statistics and
    no MiniLM/PPCL, which the default run adds) and the stack's GBDTs and MLP; ~11 min on 2 busy cores."""
    paths = _pipeline_state(tmp_path / "run", SimConfig(posts=32000, images=False, progress=False),
                            (0.8, 0.1, 0.1), sequence=True)
    tables = (*FEATURE_TABLES, "features_sequence")
    params = {"train_stack": {"feature_groups": list(tables), "learners": ["lgbm", "catboost", "xgboost", "mlp"],
                              "learner_params": {"lgbm": {"num_threads": 1}, "catboost": {"thread_count": 1},
                                                 "xgboost": {"nthread": 1}}}}

    def stack_metrics(p: Paths) -> dict:
        train_stack.run(p, params)
        return split_metrics(pl.read_parquet(p.table("predictions_stack")), splits=("val", "test"))

    base = stack_metrics(paths)
    moves = _moves(base, stack_metrics(_perturbed(paths, tmp_path / "noisy", tables, _relative_noise)))
    assert all(v < TOLERANCE[k.split("_")[1]] for k, v in moves.items()), moves

"""Reproducibility across CPU types (README, "Reproducibility").

1. The text SVD does not depend on the BLAS kernels: the same features built with OpenBLAS's
   oldest x86-64 kernels (``OPENBLAS_CORETYPE=Prescott``, in a child process) differ from this
   CPU's in at most a few values by one float32 ulp. The solver used before (randomized SVD on
   float32 TF-IDF) is the control: under the same emulation most of its values differ.
2. Metrics: every stored float feature moved by a relative 1e-6 (what another CPU's rounding
   amounts to, with room to spare) moves val/test SRC and MAE by less than the tolerance, and a
   destructive perturbation of the same features moves them by more (the check can fail).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from featurestore.features_text import TextConfig, _documents, _read, text_features
from featurestore.paths import Paths
from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import ingest, split

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
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_reproducibility as t; t._child({str(text_root.root)!r}, {str(out)!r})"
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

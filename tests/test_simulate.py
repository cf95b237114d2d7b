"""The SMPD simulator: determinism, the exact 2022+ byte format, calibration and the planted effects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from scipy.stats import spearmanr

from featurestore.sim_text import build_tree
from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import simulate as stage

SHARED = Path(__file__).resolve().parents[2] / "shared" / "smpd"
META = {"train": ["train_label.txt", "train_img_filepath.txt", "train_category.json", "train_text.json",
                  "train_temporalspatial_information.json", "train_additional_information.json",
                  "train_user_data.json"],
        "test": ["test_img_filepath.txt", "test_category.json", "test_text.json",
                 "test_temporalspatial_information.json", "test_additional_information.json", "test_user_data.json"]}
RECORD_KEYS = {"category": ["Category", "Concept", "Pid", "Uid", "Subcategory"],
               "text": ["Alltags", "Pid", "Uid", "Mediatype", "Title"],
               "temporalspatial_information": ["Postdate", "Uid", "Pid", "Longitude", "Geoaccuracy", "Latitude"],
               "additional_information": ["Mediastatus", "Pathalias", "Ispublic", "Pid", "Uid"]}
USER_COLUMNS = ["Uid", "Pid", "photo_firstdate", "photo_count", "ispro", "timezone_offset", "photo_firstdatetaken",
                "timezone_id", "user_description", "location_description"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root.parent)): p.read_bytes() for p in sorted(root.parent.rglob("*")) if p.is_file()}


def _sim(tmp: Path, **kw) -> tuple[Path, dict]:
    cfg = SimConfig(**{"posts": 400, "image_size": 48, "workers": 1, "progress": False, **kw})
    out = tmp / "smpd"
    return out, simulate_smpd(out, cfg)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    """600 posts with 64 px images."""
    return _sim(tmp_path_factory.mktemp("small"), posts=600, image_size=64, seed=5)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> tuple[Path, dict]:
    """5000 posts, no images."""
    return _sim(tmp_path_factory.mktemp("medium"), posts=5000, images=False, seed=7)


def _records(root: Path, split: str, name: str) -> list:
    return json.loads((root / f"{split}_allmetadata_json" / f"{split}_{name}.json").read_bytes())


def _oracle(root: Path):
    return pq.read_table(root.with_name(root.name + ".oracle.parquet")).to_pandas().set_index("pid")


def test_config_rejects_unknown_keys_and_bad_values():
    assert SimConfig.from_dict({"posts": 10, "seed": 1}) == SimConfig(posts=10, seed=1)
    with pytest.raises(ValueError, match="postz"):
        SimConfig.from_dict({"postz": 10})
    with pytest.raises(ValueError):
        SimConfig(test_fraction=1.5)
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    if params.is_file():  # the repo's own section must stay loadable
        assert SimConfig.from_dict(yaml.safe_load(params.read_text()).get("simulate")).posts >= 1


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    a, _ = _sim(tmp_path / "a", seed=3)
    b, _ = _sim(tmp_path / "b", seed=3, workers=2)
    c, _ = _sim(tmp_path / "c", seed=4)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len(fa) > 300 and fa.keys() == fb.keys()
    assert [k for k in fa if fa[k] != fb[k]] == []
    shared_keys = [k for k in fa if k.endswith(".json") or k.endswith(".txt")]
    assert all(fa[k] != fc.get(k) for k in shared_keys)


def test_rerun_removes_stale_files(tmp_path):
    out, _ = _sim(tmp_path, seed=1)
    stale = out / "train" / "1@N1" / "1.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    _sim(tmp_path, seed=1, images=False)
    assert not stale.exists() and not (out / "train").exists()


def test_layout_and_byte_conventions(small):
    root, summary = small
    for split, names in META.items():
        have = sorted(p.name for p in (root / f"{split}_allmetadata_json").iterdir())
        assert have == sorted(names)
    assert not (root / "test_allmetadata_json" / "test_label.txt").exists()
    for split in ("train", "test"):
        lines = (root / f"{split}_allmetadata_json" / f"{split}_img_filepath.txt").read_text().split("\n")
        assert lines[-1] == ""  # trailing newline
        paths = lines[:-1]
        pids = None
        for name, keys in RECORD_KEYS.items():
            raw = (root / f"{split}_allmetadata_json" / f"{split}_{name}.json").read_bytes()
            assert raw.count(b"\n") == 0 and raw[:2] == b"[{" and raw[-2:] == b"}]"
            raw.decode("ascii")
            recs = json.loads(raw)
            assert json.dumps(recs).encode() == raw  # default separators, ASCII escapes
            assert all(list(r) == keys and all(isinstance(v, str) for v in r.values()) for r in recs)
            got = [int(r["Pid"]) for r in recs]
            pids = got if pids is None else pids
            assert got == pids  # row alignment across files
            assert all(re.fullmatch(r"[1-9]\d*@N(0|[1-9]\d*)", r["Uid"]) for r in recs)  # no zero padding
        assert pids == sorted(pids) and len(set(pids)) == len(pids) and 775 <= min(pids) and max(pids) <= 1_118_400
        uids = [r["Uid"] for r in _records(root, split, "category")]
        assert paths == [f"{split}/{u}/{p}.jpg" for u, p in zip(uids, pids)]
        user = json.loads((root / f"{split}_allmetadata_json" / f"{split}_user_data.json").read_bytes())
        assert list(user) == USER_COLUMNS
        assert all(list(col) == [str(i) for i in range(len(pids))] for col in user.values())
        assert [user["Pid"][str(i)] for i in range(len(pids))] == pids and user["Uid"]["0"] == uids[0]
        assert all(v is None or isinstance(v, float) for v in user["photo_count"].values())
        taken = user["photo_firstdatetaken"].values()
        assert all(v is None or re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", v) for v in taken)
        assert all(v is None or re.fullmatch(r"[+-]\d\d:\d\d", v) for v in user["timezone_offset"].values())
    labels = (root / "train_allmetadata_json" / "train_label.txt").read_text()
    assert labels.endswith("\n") and all(re.fullmatch(r"\d+\.\d\d", x) for x in labels.split("\n")[:-1])
    assert len(labels.split("\n")) - 1 == summary["train_posts"]
    assert summary["train_posts"] + summary["test_posts"] == 600


def test_user_file_matches_pandas_to_json(small):
    pd = pytest.importorskip("pandas")
    root, _ = small
    raw = (root / "train_allmetadata_json" / "train_user_data.json").read_bytes()
    cols = json.loads(raw)
    df = pd.DataFrame({k: [v[str(i)] for i in range(len(v))] for k, v in cols.items()})
    assert df.to_json().encode() == raw


def test_value_conventions(medium):
    root, _ = medium
    temporal = _records(root, "train", "temporalspatial_information")
    no_geo = [r for r in temporal if r["Longitude"] == ""]
    assert all(r["Latitude"] == "0" and r["Geoaccuracy"] == "0" for r in no_geo)
    assert 0.05 < 1 - len(no_geo) / len(temporal) < 0.2
    add = _records(root, "train", "additional_information")
    assert {r["Mediastatus"] for r in add} == {"ready"} and {r["Ispublic"] for r in add} == {"1"}
    alias_users = {}
    for r in add:
        alias_users.setdefault(r["Uid"], set()).add(r["Pathalias"])
    assert 0.15 < np.mean([s == {"None"} for s in alias_users.values()]) < 0.45
    assert any(len(s) == 2 and "None" in s for s in alias_users.values())  # dropped on some posts
    text = _records(root, "train", "text")
    titles = [r["Title"] for r in text]
    assert any(t == "" for t in titles) and any(not t.isascii() for t in titles) and any("#" in t for t in titles)
    assert any("instagram:photo=" in r["Alltags"] for r in text) and any(r["Alltags"] == "" for r in text)
    assert {r["Mediatype"] for r in text} == {"photo", "video"}
    cats = _records(root, "train", "category")
    tree = build_tree()
    assert {r["Category"] for r in cats} <= set(tree.categories) and len({r["Category"] for r in cats}) == 11
    assert len(tree.subcategories) == 77 and len(tree.concepts) == len(set(tree.concepts)) == 668
    assert any("," in s for s in tree.subcategories) and set(tree.subcategories) & set(tree.categories)
    shares = {c: np.mean([r["Category"] == c for r in cats]) for c in tree.categories}
    real = dict(zip(tree.categories, tree.category_p))
    assert max(abs(shares[c] - real[c]) for c in shares) < 0.06  # FORMAT.md §4 shares


def test_label_distribution_roughly_real(medium):
    root, summary = medium
    y = np.loadtxt(root / "train_allmetadata_json" / "train_label.txt")
    assert y.min() == 1.0 and y.max() < 16.6 and 0.005 < (y == 1.0).mean() < 0.025
    assert abs(y.mean() - 6.41) < 0.2 and abs(y.std() - 2.47) < 0.2 and abs(np.median(y) - 6.23) < 0.25
    assert np.allclose(y, np.round(y, 2))
    assert 0.83 < summary["oracle_src"] < 0.92


def test_planted_effects_are_present(medium):
    root, _ = medium
    orc = _oracle(root)
    train = orc[orc["split"] == "train"]
    assert spearmanr(orc["label"], orc["expected_label"]).statistic > 0.8
    text = _records(root, "train", "text")
    y = np.loadtxt(root / "train_allmetadata_json" / "train_label.txt")
    n_tags = np.array([len(r["Alltags"].split()) for r in text])
    assert spearmanr(n_tags, y).statistic > 0.08
    geo = np.array([r["Longitude"] != "" for r in _records(root, "train", "temporalspatial_information")])
    assert (train["geo"].to_numpy()[geo] > 0).all()
    for col in ("user_influence", "user_identity", "category", "image", "text", "time_of_day", "hot"):
        assert spearmanr(orc[col], orc["label"]).statistic > 0.05, col
    # user identity is a per-user effect: two halves of a user's posts agree
    halves = orc.assign(h=orc.groupby("uid").cumcount() % 2).groupby(["uid", "h"])["label"].mean().unstack().dropna()
    assert np.corrcoef(halves[0], halves[1])[0, 1] > 0.4
    # test posts are mostly later than train posts, and are scored in the oracle
    assert orc.loc[orc["split"] == "test", "postdate"].median() > train["postdate"].quantile(0.9)
    assert orc.loc[orc["split"] == "test", "label"].notna().all()


def _sharpness(grey: np.ndarray) -> float:
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(lap.var())


def test_images_carry_their_planted_properties(small):
    root, summary = small
    orc = _oracle(root)
    files = sorted(root.glob("*/*/*.jpg"))
    assert len(files) == summary["images_written"] == int(orc["image_written"].sum())
    assert 0 < len(orc) - len(files) < 0.05 * len(orc)  # ~1% listed but missing
    rows = []
    for f in files:
        img = Image.open(f)
        assert img.format == "JPEG" and max(img.size) == 64
        grey = np.asarray(img.convert("L"), dtype=np.float64)
        rows.append((int(f.stem), grey.mean() / 255, _sharpness(grey)))
    pid, bright, sharp = map(np.array, zip(*rows))
    o = orc.loc[pid]
    assert np.corrcoef(bright, o["img_brightness"])[0, 1] > 0.95
    assert spearmanr(sharp, o["img_blur"]).statistic < -0.6
    # engineered stats recover the planted image contribution
    feats = np.column_stack([np.ones_like(bright), bright, bright ** 2, np.log(sharp + 1)])
    coef, *_ = np.linalg.lstsq(feats, o["image"].to_numpy(), rcond=None)
    assert np.corrcoef(feats @ coef, o["image"])[0, 1] > 0.5


def test_cli_params_and_flag_override(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("simulate:\n  posts: 150\n  seed: 9\n  images: false\n")
    monkeypatch.chdir(tmp_path)
    summary = stage.main([])  # no arguments: params.yaml in the CWD -> data/raw/smpd
    assert summary["posts"] == 150 and summary["images_written"] == 0
    assert (tmp_path / "data/raw/smpd/train_allmetadata_json/train_label.txt").is_file()
    assert (tmp_path / "data/raw/smpd.oracle.parquet").is_file()
    out = tmp_path / "x"
    s2 = stage.main(["--params", "params.yaml", "--posts", "120", "--out", str(out),
                     "--oracle", str(tmp_path / "o.parquet")])
    assert s2["posts"] == 120 and (tmp_path / "o.parquet").is_file()
    (tmp_path / "bad.yaml").write_text("simulate:\n  postz: 1\n")
    with pytest.raises(ValueError, match="postz"):
        stage.main(["--params", "bad.yaml"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/smpd (real calibration data) is absent")
def test_calibration_against_real_data(tmp_path):
    import pandas as pd

    out, _ = _sim(tmp_path, posts=20000, images=False, seed=11)
    real = pd.read_csv(SHARED / "real_train_labels_time_ordered.csv")["label"].to_numpy()
    y = np.loadtxt(out / "train_allmetadata_json" / "train_label.txt")
    qs = [0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
    assert np.abs(np.quantile(y, qs) - np.quantile(real, qs)).max() < 0.35
    assert abs((y == 1.0).mean() - (real == 1.0).mean()) < 0.006
    cols = ["alias"] + [f"s{i}" for i in range(8)]
    load = lambda p: pd.read_csv(p, sep="\t", header=None, names=cols, quoting=3, keep_default_na=False)  # noqa: E731
    sim_u, real_u = load(out / "user_additional.txt"), load(SHARED / "real_user_additional.txt")
    stats = []
    for u in (sim_u, real_u):
        x = u[cols[1:]].to_numpy(dtype=np.float64)
        zero = (x == 0).all(axis=1)
        logx = np.log1p(x[~zero])
        stats.append((zero.mean(), logx.mean(0), logx.std(0), np.corrcoef(logx.T)))
    (z1, m1, s1, c1), (z2, m2, s2, c2) = stats
    assert abs(z1 - z2) < 0.03
    assert np.abs(m1 - m2).max() < 0.5 and np.abs(s1 - s2).max() < 0.4 and np.abs(c1 - c2).max() < 0.15

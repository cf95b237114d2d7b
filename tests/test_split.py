import numpy as np
import pyarrow as pa
import pytest

from featurestore.split import SplitConfig, chronological_split, split_summary


def _posts(n_lab=100, n_unlab=20, seed=0):
    rng = np.random.default_rng(seed)
    pid = rng.permutation(np.arange(1, n_lab + n_unlab + 1) * 7)
    date = rng.integers(1_420_000_000, 1_460_000_000, n_lab + n_unlab)
    date[:10] = date[0]  # ties on postdate are broken by pid
    labelled = np.r_[np.ones(n_lab, bool), np.zeros(n_unlab, bool)]
    return pa.table({"pid": pid, "postdate": date, "labelled": labelled})


def test_fractions_and_chronology():
    posts = _posts()
    s = chronological_split(posts, SplitConfig(fractions=(0.8, 0.1, 0.1)))
    d = dict(zip(s["pid"].to_pylist(), zip(s["split"].to_pylist(), s["postdate"].to_pylist())))
    by = {k: [dt for sp, dt in d.values() if sp == k] for k in ("train", "val", "test", "predict")}
    assert [len(by[k]) for k in ("train", "val", "test", "predict")] == [80, 10, 10, 20]
    assert max(by["train"]) <= min(by["val"]) and max(by["val"]) <= min(by["test"])
    assert s["pid"].to_pylist() == sorted(s["pid"].to_pylist())
    # unlabelled posts are exactly the predict split, whatever their date
    unl = set(posts.filter(pa.compute.invert(posts["labelled"]))["pid"].to_pylist())
    assert {p for p, (sp, _) in d.items() if sp == "predict"} == unl


def test_label_visibility_is_train_only():
    s = chronological_split(_posts(), SplitConfig())
    vis = np.asarray(s["label_visible"].to_pylist())
    assert (vis == (np.asarray(s["split"].to_pylist()) == "train")).all()


def test_ties_broken_by_pid_deterministically():
    posts = _posts()
    a = chronological_split(posts, SplitConfig())
    b = chronological_split(posts.take(np.random.default_rng(1).permutation(posts.num_rows)), SplitConfig())
    assert a.equals(b)


def test_submit_mode_has_no_test():
    s = chronological_split(_posts(), SplitConfig(fractions=(0.9, 0.1, 0.0)))
    summary = split_summary(s)
    assert summary["test"]["rows"] == 0 and summary["train"]["rows"] == 90 and summary["val"]["rows"] == 10


@pytest.mark.parametrize("bad", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.0, 0.0, 0.0), (0.9, -0.1, 0.2)])
def test_bad_fractions_rejected(bad):
    with pytest.raises(ValueError, match="fractions"):
        SplitConfig(fractions=bad)

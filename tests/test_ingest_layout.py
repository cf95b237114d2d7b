"""Layout detection: flat or nested folders, release names, optional test split, search depth."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from featurestore.ingest import TABLES
from featurestore.smpd_layout import SMPDFormatError, locate_smpd
from ingest_helpers import FORMS, PIDS, col, folder, fpath, ingest, make


def _flatten(root: Path) -> None:
    for sub in ("train_allmetadata_json", "test_allmetadata_json"):
        for f in (root / sub).iterdir():
            f.rename(root / f.name)
        (root / sub).rmdir()


def test_flat_folder_and_subfolder_give_same_tables(tmp_path):
    nested = make(tmp_path / "a")
    flat = make(tmp_path / "b")
    _flatten(flat)
    assert (flat / "train_category.json").is_file()
    t1, r1 = ingest(nested)
    t2, r2 = ingest(flat)
    assert all(t1[t].equals(t2[t]) for t in TABLES)
    assert r1["files"]["train_text.json"]["path"] == "train_allmetadata_json/train_text.json"
    assert r2["files"]["train_text.json"]["path"] == "train_text.json"
    assert r1["splits"]["train"]["release"] == r2["splits"]["train"]["release"] == "2022+"


def test_2019_release_inside_an_archive_folder(tmp_path):
    root = make(tmp_path, "2019", "records")
    sub = root / "train_all_json"
    sub.mkdir()
    for f in list(root.glob("*_*.*")):
        f.rename(sub / f.name)
    tables, report = ingest(root)
    assert report["splits"]["train"]["release"] == report["splits"]["test"]["release"] == "2019/2020"
    assert report["files"]["train_tags.json"]["path"] == "train_all_json/train_tags.json"
    assert col(tables, "posts", "pid") == PIDS


@pytest.mark.parametrize("release, expected", [("2022", "2022+"), ("2019", "2019/2020")])
@pytest.mark.parametrize("user_form", FORMS)
def test_release_and_user_form_recorded(tmp_path, release, expected, user_form):
    _, report = ingest(make(tmp_path, release, user_form))
    for split in ("train", "test"):
        assert report["splits"][split]["release"] == expected
        assert report["splits"][split]["user_form"] == user_form
    assert report["policy"] == "error"


def test_test_split_is_optional(tmp_path):
    tables, report = ingest(make(tmp_path, with_test=False))
    assert set(report["splits"]) == {"train"}
    assert col(tables, "posts", "pid") == [775, 1075, 4890]
    assert col(tables, "posts", "split") == ["train"] * 3
    assert report["posts_read"] == 3


def test_ambiguous_duplicate_files_raise(tmp_path):
    root = make(tmp_path)
    shutil.copy(fpath(root, "text"), root / "train_text.json")
    with pytest.raises(SMPDFormatError, match=r"train: ambiguous text file.*train_text\.json.*train_text\.json"):
        ingest(root)


def test_newest_release_name_wins_when_both_present(tmp_path):
    root = make(tmp_path)
    shutil.copy(fpath(root, "text"), folder(root) / "train_tags.json")
    located = locate_smpd(root)
    assert located["train"]["text"].name == "train_text.json"
    assert located["train"].release == "2022+"


def test_image_folders_are_not_scanned_for_metadata(tmp_path):
    """A stray copy of a metadata file inside ``train/<Uid>/`` must not be taken for a metadata file."""
    root = make(tmp_path)
    shutil.copy(fpath(root, "text"), root / "train" / "59@N75" / "train_text.json")
    shutil.copy(fpath(root, "label", "train"), root / "test" / "8770@N36" / "train_label.txt")
    tables, report = ingest(root)
    assert report["files"]["train_text.json"]["path"] == "train_allmetadata_json/train_text.json"
    assert col(tables, "posts", "pid") == PIDS


def test_files_three_levels_down_are_not_found(tmp_path):
    root = make(tmp_path / "deep")
    deeper = tmp_path / "outer"
    deeper.mkdir()
    (tmp_path / "deep").rename(deeper / "deep")  # outer/deep/smpd/train_allmetadata_json/...
    with pytest.raises(SMPDFormatError, match="no SMPD train files"):
        ingest(deeper)
    assert ingest(deeper / "deep")[1]["files"]["train_text.json"]["path"] == "smpd/train_allmetadata_json/train_text.json"

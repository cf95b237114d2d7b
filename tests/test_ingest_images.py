"""Image list: path checks against Uid/Pid, URL form, image existence checks and image report."""

from __future__ import annotations

import pyarrow as pa
import pytest

from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import SHARED_EXPECTED, col, ingest, make, set_line, where


@pytest.mark.parametrize("bad", ["train/1@N18/1076.jpg", "train/1@N19/1075.jpg", "1075.jpg", ""])
def test_image_path_must_match_uid_and_pid(tmp_path, bad):
    root = make(tmp_path)
    set_line(root, "image_list", 1, bad)
    with pytest.raises(SMPDFormatError, match=where("train_img_filepath.txt", 1, "path") + r": does not match Uid/Pid 1@N18/1075"):
        ingest(root)


def test_image_path_mismatch_in_test_split_names_test_file(tmp_path):
    root = make(tmp_path)
    set_line(root, "image_list", 0, "test/8770@N36/50732.jpg", split="test")
    with pytest.raises(SMPDFormatError, match=where("test_img_filepath.txt", 0, "path")):
        ingest(root)


def test_url_form_keeps_url_and_derives_path(tmp_path):
    tables, _ = ingest(make(tmp_path, "2019", "records"))
    assert col(tables, "images", "url") == [
        "https://www.flickr.com/photos/1000@N00/385070026", "https://www.flickr.com/photos/1001@N00/385070027",
        "https://www.flickr.com/photos/1002@N00/385070028", None, None]
    assert col(tables, "images", "path") == SHARED_EXPECTED[("images", "path")]
    assert col(tables, "images", "exists") == [True, True, False, True, False]


def test_url_form_is_linked_by_row_not_checked_against_ids(tmp_path):
    root = make(tmp_path, "2019")
    set_line(root, "image_list", 1, "http://www.flickr.com/photos/58708830@N00/1", release="2019")
    tables, _ = ingest(root)
    assert col(tables, "images", "url")[1] == "http://www.flickr.com/photos/58708830@N00/1"
    assert col(tables, "images", "path")[1] == "train/1@N18/1075.jpg"


def test_check_images_false_gives_nulls(tmp_path):
    tables, report = ingest(make(tmp_path), check_images=False)
    assert col(tables, "images", "exists") == [None] * 5
    assert tables["images"].schema.field("exists").type == pa.bool_()
    assert report["images"] == {"listed": 5, "checked": False, "present": None, "missing": None}


def test_image_report_counts(tmp_path):
    _, report = ingest(make(tmp_path))
    assert report["images"] == {"listed": 5, "checked": True, "present": 3, "missing": 2}


def test_image_root_option(tmp_path):
    root = make(tmp_path, images=False)
    images = tmp_path / "imgs"
    (images / "train" / "1@N18").mkdir(parents=True)
    (images / "train" / "1@N18" / "4890.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    (images / "test" / "10082@N16").mkdir(parents=True)
    (images / "test" / "10082@N16" / "96454.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    tables, _ = ingest(root)
    assert col(tables, "images", "exists") == [False] * 5
    tables, report = ingest(root, image_root=str(images))
    assert col(tables, "images", "exists") == [False, False, True, False, True]
    assert report["images"]["present"] == 2

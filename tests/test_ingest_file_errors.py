"""Structural errors (broken JSON, missing or misaligned files, wrong JSON shapes) name the file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from featurestore.ingest import IngestConfig
from featurestore.smpd_io import read_lines
from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import dump, fpath, ingest, load, make, where


def test_broken_json_names_the_file(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "text")
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(SMPDFormatError, match=r"^train_text\.json: broken JSON"):
        ingest(root)


@pytest.mark.parametrize("release, kind", [("2022", "user"), ("2019", "temporal"), ("2022", "category")])
def test_broken_json_in_other_files(tmp_path, release, kind):
    root = make(tmp_path, release)
    p = fpath(root, kind, release=release)
    p.write_text('[{"Pid": "775",')
    with pytest.raises(SMPDFormatError, match=re.escape(p.name) + r": broken JSON"):
        ingest(root, on_bad_row="reject")  # structural: raises under reject too


@pytest.mark.parametrize("kind, name", [
    ("text", "train_text.json"), ("user", "train_user_data.json"), ("label", "train_label.txt"),
    ("image_list", "train_img_filepath.txt"), ("additional", "train_additional_information.json"),
])
def test_missing_required_file_is_named(tmp_path, kind, name):
    root = make(tmp_path)
    fpath(root, kind).unlink()
    with pytest.raises(SMPDFormatError, match=r"train split is incomplete, missing file\(s\): " + re.escape(name)):
        ingest(root)


def test_incomplete_test_split_is_an_error(tmp_path):
    root = make(tmp_path)
    fpath(root, "temporal", "test").unlink()
    with pytest.raises(SMPDFormatError, match=r"test split is incomplete.*test_temporalspatial_information\.json"):
        ingest(root)


def test_missing_train_split_or_directory(tmp_path):
    with pytest.raises(SMPDFormatError, match="does not exist"):
        ingest(tmp_path / "nope")
    root = make(tmp_path)
    shutil.rmtree(root / "train_allmetadata_json")
    with pytest.raises(SMPDFormatError, match=r"no SMPD train files"):
        ingest(root)


def _drop_last_row(root: Path, kind: str, release: str = "2022") -> None:
    p = fpath(root, kind, release=release)
    if kind in ("label", "image_list"):
        lines = read_lines(p)
        p.write_text("\n".join(lines[:-1]) + "\n")
        return
    data = load(p)
    if isinstance(data, list):
        dump(p, data[:-1])
    else:
        dump(p, {c: {k: v for k, v in inner.items() if k != str(len(inner) - 1)} for c, inner in data.items()})


@pytest.mark.parametrize("release, user_form, kind", [
    ("2022", "columns", "text"), ("2022", "columns", "temporal"), ("2022", "columns", "additional"),
    ("2022", "columns", "user"), ("2019", "records", "user"), ("2022", "columns", "image_list"),
    ("2022", "columns", "label"), ("2019", "records", "image_list"),
])
@pytest.mark.parametrize("policy", ["error", "reject"])
def test_misaligned_row_counts_name_both_files_and_counts(tmp_path, release, user_form, kind, policy):
    root = make(tmp_path, release, user_form)
    _drop_last_row(root, kind, release)
    name = fpath(root, kind, release=release).name
    rx = re.escape(name) + r": misaligned, 2 rows but train_category\.json has 3"
    with pytest.raises(SMPDFormatError, match=rx):
        ingest(root, on_bad_row=policy)


def test_extra_row_in_category_is_misaligned(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "category")
    data = load(p)
    dump(p, data + [dict(data[0], Pid="9999")])
    with pytest.raises(SMPDFormatError, match=r"train_text\.json: misaligned, 3 rows but train_category\.json has 4"):
        ingest(root)


@pytest.mark.parametrize("kind, release, user_form", [
    ("text", "2022", "columns"), ("category", "2022", "columns"), ("additional", "2019", "records"),
    ("user", "2019", "records"),
])
@pytest.mark.parametrize("policy", ["error", "reject"])
def test_record_that_is_not_an_object(tmp_path, kind, release, user_form, policy):
    root = make(tmp_path, release, user_form)
    p = fpath(root, kind, release=release)
    data = load(p)
    data[1] = ["775", "59@N75"]
    dump(p, data)
    with pytest.raises(SMPDFormatError, match=re.escape(p.name) + r" row 1: expected a JSON object, got list"):
        ingest(root, on_bad_row=policy)


@pytest.mark.parametrize("kind", ["text", "temporal"])
def test_record_file_that_is_not_an_array(tmp_path, kind):
    root = make(tmp_path)
    p = fpath(root, kind)
    dump(p, {"Pid": "775"})
    with pytest.raises(SMPDFormatError, match=re.escape(p.name) + r": expected a JSON array of records, got dict"):
        ingest(root, on_bad_row="reject")


def test_user_file_of_unknown_shape(tmp_path):
    root = make(tmp_path)
    dump(fpath(root, "user"), {"Uid": ["59@N75"], "Pid": [775]})  # "list" orientation: not supported
    with pytest.raises(SMPDFormatError, match=r"train_user_data\.json: expected a JSON array of records \(7a\) or a columnar"):
        ingest(root)


@pytest.mark.parametrize("policy", ["error", "reject"])
def test_columnar_user_file_missing_row_key(tmp_path, policy):
    root = make(tmp_path)
    p = fpath(root, "user")
    dump(p, {c: {k: v for k, v in inner.items() if k != "1"} for c, inner in load(p).items()})
    with pytest.raises(SMPDFormatError, match=where("train_user_data.json", None, "Uid") + r": row keys are not 0\.\.n-1"):
        ingest(root, on_bad_row=policy)


@pytest.mark.parametrize("policy", ["error", "reject"])
def test_columnar_user_file_columns_of_different_length(tmp_path, policy):
    root = make(tmp_path)
    p = fpath(root, "user")
    data = load(p)
    del data["photo_count"]["2"]
    dump(p, data)
    with pytest.raises(SMPDFormatError,
                       match=where("train_user_data.json", None, "photo_count") + r": column rows differ"):
        ingest(root, on_bad_row=policy)


def test_columnar_user_file_non_integer_row_key(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "user")
    data = load(p)
    data = {c: {("x" if k == "1" else k): v for k, v in inner.items()} for c, inner in data.items()}
    dump(p, data)
    with pytest.raises(SMPDFormatError, match=where("train_user_data.json", None, "Uid") + r": row key 'x' is not an integer"):
        ingest(root)


def test_columnar_user_file_column_not_an_object(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "user")
    data = load(p)
    data["ispro"] = [0.0, 1.0, 0.0]
    dump(p, data)
    with pytest.raises(SMPDFormatError, match=r"train_user_data\.json: expected a JSON array of records \(7a\)"):
        ingest(root)


def test_invalid_policy():
    with pytest.raises(ValueError, match="on_bad_row"):
        IngestConfig(on_bad_row="skip")

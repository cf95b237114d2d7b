"""Line-based files (label file, image list): whitespace, line-end and trailing-newline variants."""

from __future__ import annotations

import pytest

from featurestore.smpd_io import read_lines
from ingest_helpers import col, fpath, ingest, make


@pytest.mark.parametrize("content", [
    b"7.46\n11.98\n3.46\n",
    b"7.46\n11.98\n3.46",  # no trailing newline
    b"7.46 \n11.98  \n3.46 \n",  # trailing whitespace
    b"7.46 x\n11.98 12 13\n3.46 y",  # extra fields
    b"7.46\r\n11.98\r\n3.46\r\n",  # Windows line ends
    b"7.46\r\n11.98\r\n3.46",
    b" 7.46\n11.98\t\n3.46\n",
])
def test_label_file_variants(tmp_path, content):
    root = make(tmp_path)
    fpath(root, "label").write_bytes(content)
    tables, _ = ingest(root)
    assert col(tables, "labels", "label") == [7.46, 11.98, 3.46]


def test_windows_line_ends_in_image_list(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "image_list")
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    tables, _ = ingest(root)
    assert col(tables, "images", "path")[:3] == ["train/59@N75/775.jpg", "train/1@N18/1075.jpg", "train/1@N18/4890.jpg"]


def test_read_lines(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"a\r\nb \n\nc\n")
    assert read_lines(p) == ["a", "b ", "", "c"]
    p.write_bytes(b"a\nb")
    assert read_lines(p) == ["a", "b"]
    p.write_bytes(b"")
    assert read_lines(p) == []

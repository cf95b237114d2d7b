"""Bytes that are not UTF-8: the error names the file, the 1-based line and the byte offset.

Every SMPD reader (JSON files, label file, image list, crawled statistics) goes through one
check; a bad byte is structural (there is no row to reject), so it raises under both policies.
"""

from __future__ import annotations

import re

import pytest

from featurestore.smpd_io import read_json, read_lines
from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import fpath, ingest, make

BAD = [b"\xff", b"\xfe", b"\xc3(", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"]  # stray, truncated, surrogate, lone continuation


def _expect(name: str, data: bytes, bad: bytes) -> str:
    offset = data.index(bad)
    line = data.count(b"\n", 0, offset) + 1
    return re.escape(f"{name}: line {line}: invalid UTF-8 byte 0x{bad[0]:02x} at byte offset {offset}")


def _insert_after_line(data: bytes, line: int, bad: bytes) -> bytes:
    """``bad`` in the middle of line ``line`` (1-based)."""
    lines = data.split(b"\n")
    lines[line - 1] = lines[line - 1][:2] + bad + lines[line - 1][2:]
    return b"\n".join(lines)


@pytest.mark.parametrize("bad", BAD, ids=[b.hex() for b in BAD])
@pytest.mark.parametrize("kind, name, line", [("label", "train_label.txt", 3), ("image_list", "train_img_filepath.txt", 2)])
@pytest.mark.parametrize("policy", ["error", "reject"])
def test_bad_byte_in_line_file(tmp_path, kind, name, line, bad, policy):
    root = make(tmp_path)
    p = fpath(root, kind)
    data = _insert_after_line(p.read_bytes(), line, bad)
    p.write_bytes(data)
    with pytest.raises(SMPDFormatError, match="^" + _expect(name, data, bad) + "$"):
        ingest(root, on_bad_row=policy)


@pytest.mark.parametrize("bad", BAD, ids=[b.hex() for b in BAD])
@pytest.mark.parametrize("kind", ["category", "text", "temporal", "additional", "user"])
def test_bad_byte_in_json_file(tmp_path, kind, bad):
    root = make(tmp_path)
    p = fpath(root, kind)
    data = p.read_bytes()
    end = data.rfind(b'"')  # the closing quote of the file's last string: the byte lands inside a string
    data = data[:end] + bad + data[end:]
    p.write_bytes(data)
    with pytest.raises(SMPDFormatError, match="^" + _expect(p.name, data, bad) + "$"):
        ingest(root, on_bad_row="reject")


def test_bad_byte_in_multiline_json_reports_the_line(tmp_path):
    p = tmp_path / "train_category.json"
    data = b'[\n  {"Pid": "1"},\n  {"Pid": "2", "Uid": "x\xffy"}\n]'
    p.write_bytes(data)
    with pytest.raises(SMPDFormatError, match=r"^train_category\.json: line 3: invalid UTF-8 byte 0xff at byte offset 42$"):
        read_json(p)


def test_byte_order_mark_is_named(tmp_path):
    p = tmp_path / "train_text.json"
    p.write_bytes(b"\xef\xbb\xbf[]")
    with pytest.raises(SMPDFormatError, match=r"^train_text\.json: broken JSON.*(BOM|byte order mark)"):
        read_json(p)


def test_broken_json_that_is_valid_utf8_still_names_orjson_position(tmp_path):
    p = tmp_path / "train_text.json"
    p.write_bytes('[{"Title": "caf\u00e9"},'.encode())
    with pytest.raises(SMPDFormatError, match=r"^train_text\.json: broken JSON"):
        read_json(p)


def test_read_lines_keeps_non_ascii_and_line_end_rules(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes("caf\u00e9\r\nb\rc\n\n".encode())
    assert read_lines(p) == ["caf\u00e9", "b", "c", ""]  # as Python's text mode: \r, \r\n and \n end a line


@pytest.mark.parametrize("fname, content", [
    ("user_additional.txt", b"alice\t1\t2\t3\t4\t5\t6\t7\t8\nb\xffb\t1\t2\t3\t4\t5\t6\t7\t8\n"),
    ("user_additional.csv", b"Pathalias,totalViews,totalTags,totalGeotagged,totalFaves,totalInGroup,photoCount,"
                            b"followerCount,followingCount\nal\xc3ce,1,2,3,4,5,6,7,8\n"),
])
@pytest.mark.parametrize("policy", ["error", "reject"])
def test_bad_byte_in_crawled_file(tmp_path, fname, content, policy):
    root = make(tmp_path)
    (root / fname).write_bytes(content)
    bad = b"\xff" if b"\xff" in content else b"\xc3"
    with pytest.raises(SMPDFormatError, match="^" + _expect(fname, content, bad) + "$"):
        ingest(root, on_bad_row=policy)


def test_crawled_file_in_a_subfolder_is_named_relative_to_the_root(tmp_path):
    root = make(tmp_path)
    (root / "extra").mkdir()
    content = b"alice\t1\t2\t3\t4\t5\t6\t7\t8\x80\n"
    (root / "extra" / "user_additional.txt").write_bytes(content)
    with pytest.raises(SMPDFormatError, match="^" + _expect("extra/user_additional.txt", content, b"\x80")):
        ingest(root)

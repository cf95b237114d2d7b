"""Image hardening: pixel limit before decoding, corrupt/too-large counts in the stage report, paths that
leave the image root (ingest and the image stage); and the faster measures against plain references."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile

import featurestore.image_measures as m
from featurestore.config import ParamsError, config_from_dict, load_params
from featurestore.image_decode import (
    COLUMNS, MAX_PIXELS, OK, TOO_LARGE, ImageTooLarge, decode_reduced, image_row, worker_settings,
)
from featurestore.image_stats import ImageStatsConfig, image_stats_table
from featurestore.ingest import image_path
from featurestore.paths import Paths
from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import col, ingest, make, set_line, where
from pipelines import features_image_stats

ROOT = Path(__file__).resolve().parents[1]


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid all-black greyscale PNG of ``width x height`` px, compressed row by row (13,000^2 -> ~164 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0 + one byte per pixel
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def jpeg(path: Path, size=(320, 240), seed=0, **save) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, np.full_like(x, 128)], axis=2) + rng.normal(0, 12, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, "JPEG", **save)
    return path


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Any attempt to decode pixels fails the test: a refused image must stay undecoded."""
    def refuse(*_a, **_k):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --- pixel limit ------------------------------------------------------------------------------------------------

def test_a_13000_px_png_bomb_is_refused_from_its_header(tmp_path, no_pixel_decoding):
    bomb = png_bomb(tmp_path / "bomb.png", 13_000, 13_000)
    assert bomb.stat().st_size < 400_000                    # 169 Mpx (1.9 GB decoded) in a few hundred KB
    with pytest.raises(ImageTooLarge, match="169000000 pixels"):
        decode_reduced(bomb, 256)                           # PIL's own check only warns below 179 Mpx
    with worker_settings(MAX_PIXELS), pytest.raises(ImageTooLarge):
        decode_reduced(bomb, 256)                           # in a worker PIL's limit is ours: its error, mapped
    status, row = image_row(str(bomb))
    assert status == TOO_LARGE and row[0] == 1.0 and np.isnan(row[1:]).all()


def test_pixel_limit_is_a_param_and_flags_the_row_corrupt(tmp_path, no_pixel_decoding):
    png_bomb(tmp_path / "big.png", 400, 300)
    images = pa.table({"pid": pa.array([7], pa.int64()), "path": ["big.png"]})
    table, summary = image_stats_table(images, tmp_path, ImageStatsConfig(workers=1, progress=False,
                                                                          max_pixels=100_000))
    assert (summary["corrupt"], summary["too_large"], summary["processed"]) == (1, 1, 0)
    assert summary["examples"]["too_large"] == [7] and summary["max_pixels"] == 100_000
    assert table["img_missing"].to_pylist() == [1.0] and table["img_width"].null_count == 1


def test_an_image_at_the_limit_is_decoded(tmp_path):
    png_bomb(tmp_path / "ok.png", 400, 300)
    status, row = image_row(str(tmp_path / "ok.png"), max_pixels=120_000)
    assert status == OK and (row[1], row[2]) == (400, 300)


def test_max_pixels_config_and_params():
    assert ImageStatsConfig().max_pixels == MAX_PIXELS == 50_000_000
    with pytest.raises(ParamsError, match="max_pixels"):
        config_from_dict(ImageStatsConfig, "features_image_stats", {"max_pixels": 0})
    assert load_params(ROOT / "params.yaml")["features_image_stats"]["max_pixels"] == MAX_PIXELS


# --- report of the stage ----------------------------------------------------------------------------------------

def test_stage_report_counts_present_missing_corrupt_and_too_large(tmp_path):
    smpd, work = tmp_path / "smpd", tmp_path / "work"
    rel = [f"train/u/{i}.jpg" for i in range(6)]
    for i in (0, 1):
        jpeg(smpd / rel[i], seed=i)
    (smpd / rel[2]).write_bytes(b"not an image at all" * 50)
    good = (smpd / rel[0]).read_bytes()
    (smpd / rel[3]).write_bytes(good[: len(good) // 2])            # truncated JPEG
    png_bomb(smpd / rel[4], 13_000, 13_000)
    pids = [10, 20, 30, 40, 50, 60, 70]                                  # 60: file absent; 70: no images row
    (work / "data/tables").mkdir(parents=True)
    pq.write_table(pa.table({"pid": pa.array(pids, pa.int64()), "postdate": pa.array([1] * 7)}),
                   work / "data/tables/posts.parquet")
    pq.write_table(pa.table({"pid": pa.array(pids[:6], pa.int64()), "path": rel}), work / "data/tables/images.parquet")
    params = {"features_image_stats": {"workers": 1, "faces": False, "progress": False}}
    summary = features_image_stats.run(Paths(root=work, smpd=smpd), params)
    report = json.loads((work / "reports/features_image_stats.json").read_text())
    counts = {k: report[k] for k in ("images", "processed", "present", "missing", "corrupt", "too_large",
                                     "outside_root")}
    assert counts == {"images": 7, "processed": 2, "present": 5, "missing": 2, "corrupt": 3, "too_large": 1,
                      "outside_root": 0}
    assert report["examples"] == {"missing": [60, 70], "corrupt": [30, 40, 50], "too_large": [50],
                                  "outside_root": []}
    assert report["processed"] + report["missing"] + report["corrupt"] == report["images"] == report["rows"]
    assert summary == report


# --- paths outside the image root -------------------------------------------------------------------------------

@pytest.mark.parametrize("entry,inside", [
    ("train/1@N18/1075.jpg", "train/1@N18/1075.jpg"), ("train/./x/../1@N18/1075.jpg", "train/1@N18/1075.jpg"),
    ("../outside/1@N18/1075.jpg", None), ("../../../outside/1@N18/1075.jpg", None), ("train/../../x.jpg", None),
    ("/etc/1@N18/1075.jpg", None), ("..", None), ("", None), (None, None), ("a\x00b.jpg", None)])
def test_image_path_stays_inside_the_root(entry, inside):
    assert image_path("/data/smpd", entry) == (None if inside is None else f"/data/smpd/{inside}")


@pytest.fixture
def outside_image(tmp_path):
    """The fixture SMPD dir and a readable JPEG beside it (outside it) named like train row 1."""
    jpeg(tmp_path / "outside" / "1@N18" / "1075.jpg")
    return make(tmp_path)


@pytest.mark.parametrize("entry", ["../outside/1@N18/1075.jpg", "../../../outside/1@N18/1075.jpg", "{abs}"])
def test_ingest_refuses_an_image_path_outside_the_root(outside_image, entry):
    entry = entry.format(abs=outside_image.parent / "outside" / "1@N18" / "1075.jpg")
    set_line(outside_image, "image_list", 1, entry)
    with pytest.raises(SMPDFormatError, match=where("train_img_filepath.txt", 1, "path") + ": outside the image root"):
        ingest(outside_image)


def test_ingest_reject_policy_drops_and_counts_the_row(outside_image):
    set_line(outside_image, "image_list", 1, "../outside/1@N18/1075.jpg")
    tables, report = ingest(outside_image, on_bad_row="reject")
    assert 1075 not in col(tables, "posts", "pid") and 1075 not in col(tables, "images", "pid")
    assert report["splits"]["train"]["rejected_by_reason"] == {"outside the image root (absolute or '..' past it)": 1}
    assert report["images"]["present"] == 2    # the outside file was neither counted nor kept


def test_image_stage_never_opens_a_path_outside_the_root(tmp_path, monkeypatch):
    root = tmp_path / "smpd"
    inside = jpeg(root / "train/u/1.jpg")
    outside = jpeg(tmp_path / "outside/u/2.jpg", seed=1)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    images = pa.table({"pid": pa.array([1, 2, 3], pa.int64()),
                       "path": ["train/u/1.jpg", "../outside/u/2.jpg", str(outside)]})
    table, summary = image_stats_table(images, root, ImageStatsConfig(workers=1, faces=False, progress=False))
    assert (summary["processed"], summary["missing"], summary["outside_root"]) == (1, 2, 2)
    assert summary["examples"]["outside_root"] == [2, 3]
    assert table["img_missing"].to_pylist() == [0.0, 1.0, 1.0]
    assert opened == [str(inside)]


# --- the faster measures give the reference values ------------------------------------------------------------

def ref_colourfulness(rgb):
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * r + 0.5 * g - b
    return np.hypot(rg.std(dtype=np.float64), yb.std(dtype=np.float64)) + 0.3 * np.hypot(rg.mean(dtype=np.float64),
                                                                                           yb.mean(dtype=np.float64))


def ref_mass(grey):
    g = np.pad(grey.astype(np.float64), 1, mode="edge")
    gx = (g[:-2, 2:] + 2 * g[1:-1, 2:] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[1:-1, :-2] + g[2:, :-2])
    gy = (g[2:, :-2] + 2 * g[2:, 1:-1] + g[2:, 2:]) - (g[:-2, :-2] + 2 * g[:-2, 1:-1] + g[:-2, 2:])
    return np.sqrt((gx * gx + gy * gy).astype(np.float32))


@pytest.mark.parametrize("seed", range(4))
def test_measures_equal_plain_numpy_references(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(20, 200, 2)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), float(rng.uniform(0.3, 3)))
    p = m.planes(rgb)
    assert m.colourfulness(rgb) == pytest.approx(ref_colourfulness(rgb), rel=1e-12)
    mass = m.edge_mass(p.grey)
    assert np.array_equal(mass, ref_mass(p.grey))
    cols, rows = m.marginals(mass)
    assert np.array_equal(cols, mass.astype(np.float64).sum(axis=0))
    assert np.array_equal(rows, mass.sum(axis=1, dtype=np.float64))
    assert m.edge_density(p.grey) == np.count_nonzero(cv2.Canny(p.grey, m.CANNY_LOW, m.CANNY_HIGH)) / p.grey.size
    lap = m.laplacian(p.grey).astype(np.float64)
    assert m.sharpness(m.laplacian(p.grey)) == pytest.approx(lap.var(), rel=1e-12)
    box = (h // 4, h // 2 + 1, w // 3, w - 2)
    expect = (np.mean(lap[box[0]:box[1], box[2]:box[3]] ** 2) + 1e-12) / (np.mean(lap ** 2) + 1e-12)
    assert m.clarity_contrast(m.laplacian(p.grey), box) == pytest.approx(expect, rel=1e-12)


def test_every_column_is_still_there():
    assert len(COLUMNS) == 29 and COLUMNS[0] == "img_missing" and COLUMNS[-1] == "img_face_count"

"""image_stats: each statistic on hand-made arrays, the reduced decode, missing/corrupt files, determinism, the stage."""

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

import featurestore.image_measures as m
from featurestore.config import config_from_dict
from featurestore.image_decode import COLUMNS, decode_reduced
from featurestore.image_stats import ImageStatsConfig, image_stats_table
from pipelines import features_image_stats
from featurestore.paths import Paths


def flat(value=128, shape=(48, 64)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def checkerboard(shape=(48, 64), cell=1) -> np.ndarray:
    y, x = np.indices(shape)
    return np.repeat((((y // cell + x // cell) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)


def disc(cx: float, cy: float, shape=(120, 180), r=10) -> np.ndarray:
    """A white disc centred at unit coordinates (cx, cy) on black."""
    img = np.zeros((*shape, 3), np.uint8)
    cv2.circle(img, (round(cx * shape[1]), round(cy * shape[0])), r, (255, 255, 255), -1)
    return img


def test_flat_image_has_no_contrast_detail_colour_or_entropy():
    s = m.measure(flat(128))
    for k in ("contrast", "sharpness", "edge_density", "colourfulness", "saturation", "grey_entropy",
              "colour_entropy", "hue_count", "chromatic_share", "brightness_contrast"):
        assert s[k] == 0.0, k
    assert s["clarity_contrast"] == 1.0 and s["subject_area"] == 1.0   # no edges: the whole image is the subject
    assert (s["centroid_x"], s["centroid_y"], s["centre_distance"]) == (0.5, 0.5, 0.0)
    assert np.isnan(s["dom_hue_1"]) and s["dom_share_1"] == 0.0


@pytest.mark.parametrize("value", [0, 37, 128, 255])
def test_brightness_of_a_constant_image_is_its_value(value):
    assert m.brightness(m.planes(flat(value)).grey) == pytest.approx(value / 255)


def test_checkerboard_is_sharp_and_edgy():
    p = m.planes(checkerboard())
    assert m.sharpness(m.laplacian(p.grey)) > 1e5       # |laplacian| = 4 x 255 almost everywhere
    assert m.sharpness(m.laplacian(m.planes(checkerboard(cell=8)).grey)) < m.sharpness(m.laplacian(p.grey))
    assert m.edge_density(m.planes(checkerboard(cell=4)).grey) > 0.2
    assert m.rms_contrast(p.grey) == pytest.approx(0.5)
    assert m.grey_entropy(p.grey) == pytest.approx(1.0)   # two equally common levels


def test_pure_red_has_one_hue_and_full_saturation():
    s = m.measure(np.tile(np.array([255, 0, 0], np.uint8), (30, 40, 1)))
    assert s["hue_count"] == 1.0 and s["saturation"] == 1.0 and s["chromatic_share"] == 1.0
    assert s["dom_hue_1"] == pytest.approx(0.025) and s["dom_share_1"] == 1.0 and np.isnan(s["dom_hue_2"])


def test_two_colours_give_two_hues_and_dominant_shares():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:, :30] = (0, 0, 255)    # blue, 3/4 of the image
    img[:, 30:] = (0, 255, 0)    # green, 1/4
    s = m.measure(img)
    assert s["hue_count"] == 2.0
    assert s["dom_hue_1"] == pytest.approx(13.5 / 20) and s["dom_share_1"] == pytest.approx(0.75)  # 240 deg
    assert s["dom_hue_2"] == pytest.approx(6.5 / 20) and s["dom_share_2"] == pytest.approx(0.25)   # 120 deg
    assert m.colour_entropy(img) == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))


def test_colourfulness_increases_with_saturation():
    base = np.zeros((40, 60, 3), np.float64)
    base[:, :20], base[:, 20:40], base[:, 40:] = (220, 30, 30), (30, 200, 40), (40, 60, 230)
    grey = base.mean(axis=2, keepdims=True)
    values = [m.colourfulness((grey + a * (base - grey)).round().astype(np.uint8)) for a in (0.0, 0.25, 0.5, 1.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-6) and all(np.diff(values) > 0)


@pytest.mark.parametrize("value", [0, 90, 255])
def test_entropy_of_a_constant_image_is_zero(value):
    p = m.planes(flat(value))
    assert m.grey_entropy(p.grey) == 0.0 and m.colour_entropy(p.rgb) == 0.0
    assert m.entropy_bits(np.zeros(8)) == 0.0


def test_subject_at_a_thirds_point_beats_one_at_a_corner():
    thirds, corner, centre = (m.measure(disc(x, y)) for x, y in ((1 / 3, 1 / 3), (0.08, 0.1), (0.5, 0.5)))
    assert thirds["thirds_distance"] < 0.02 < corner["thirds_distance"]
    assert (thirds["centroid_x"], thirds["centroid_y"]) == pytest.approx((1 / 3, 1 / 3), abs=0.01)
    assert centre["centre_distance"] < 0.01 < thirds["centre_distance"] < corner["centre_distance"]
    assert m.composition(0.0, 0.0) == pytest.approx((np.sqrt(2) / 3, np.sqrt(0.5)))


def test_textured_bright_subject_has_clarity_and_brightness_contrast():
    img = flat(40, (120, 160))
    img[40:80, 50:110] = checkerboard((40, 60), cell=2)    # sharp, mean 127.5 on a dark, flat background
    s = m.measure(img)
    assert s["clarity_contrast"] > 3 and s["subject_area"] < 0.25
    assert s["brightness_contrast"] == pytest.approx((127.5 - 40) / 255, abs=0.02)
    assert (s["centroid_x"], s["centroid_y"]) == pytest.approx((0.5, 0.5), abs=0.01)


def drawn_face(size: int, bg: int = 90) -> np.ndarray:
    """A cartoon frontal face (grey, blurred) the Haar cascade detects: hair, brows, eyes, nose, mouth."""
    g = np.full((size, size), bg, np.uint8)
    c = size // 2
    cv2.ellipse(g, (c, c), (int(size * .32), int(size * .42)), 0, 0, 360, 170, -1)
    cv2.ellipse(g, (c, int(c - size * .42)), (int(size * .34), int(size * .15)), 0, 0, 360, 40, -1)
    for dx in (-1, 1):
        ex, ey = int(c + dx * size * .14), int(c - size * .08)
        cv2.ellipse(g, (ex, ey - int(size * .07)), (int(size * .08), int(size * .02)), 0, 0, 360, 60, -1)
        cv2.ellipse(g, (ex, ey), (int(size * .07), int(size * .035)), 0, 0, 360, 230, -1)
        cv2.circle(g, (ex, ey), int(size * .03), 30, -1)
    cv2.line(g, (c, int(c - size * .05)), (c, int(c + size * .1)), 140, max(1, size // 40))
    cv2.ellipse(g, (c, int(c + size * .2)), (int(size * .1), int(size * .03)), 0, 0, 360, 90, -1)
    return cv2.GaussianBlur(g, (0, 0), size / 80)


@pytest.mark.parametrize("size,x,y", [(80, 10, 10), (96, 150, 60), (128, 100, 40)])
def test_a_drawn_face_is_counted(size, x, y):
    img = np.full((192, 256), 90, np.uint8)
    img[y:y + size, x:x + size] = drawn_face(size)
    assert m.measure(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))["face_count"] == 1.0


def test_no_face_in_noise_and_none_counted_when_faces_off():
    noise = np.random.default_rng(0).integers(0, 256, (192, 256, 3), dtype=np.uint8)
    assert m.measure(noise)["face_count"] == 0.0
    assert np.isnan(m.measure(noise, faces=False)["face_count"])   # null in the table: "not run"


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))))
def test_any_image_gives_finite_statistics_in_range(rgb):
    s = m.measure(rgb)
    assert list(s) == list(m.MEASURES)
    assert all(np.isfinite(v) for k, v in s.items() if not k.startswith("dom_hue"))
    for k in ("brightness", "saturation", "edge_density", "chromatic_share", "subject_area",
              "centroid_x", "centroid_y", "dom_share_1"):
        assert 0.0 <= s[k] <= 1.0, k
    assert 0 <= s["grey_entropy"] <= 8 and 0 <= s["colour_entropy"] <= 9 and 0 <= s["hue_count"] <= 20
    assert -1 <= s["brightness_contrast"] <= 1 and s["clarity_contrast"] > 0


# --- decoding, files, table ---------------------------------------------------------------------------------------

def write_jpeg(path: Path, size=(640, 480), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, np.full_like(x, 128)], axis=2) + rng.normal(0, 8, (h, w, 3))
    cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), h // 5, (240, 30, 30), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


@pytest.mark.parametrize("size,expect", [((640, 480), (192, 256)), ((480, 1000), (256, 123)), ((100, 60), (60, 100))])
def test_reduced_decode_keeps_the_original_size(tmp_path, size, expect):
    rgb, w, h = decode_reduced(write_jpeg(tmp_path / "a.jpg", size), 256)
    assert (w, h) == size and rgb.shape == (*expect, 3) and rgb.dtype == np.uint8


def test_reduced_decode_reads_other_formats(tmp_path):
    Image.fromarray(checkerboard((300, 500), cell=10)[..., 0]).save(tmp_path / "a.png")   # greyscale PNG
    rgb, w, h = decode_reduced(tmp_path / "a.png", 100)
    assert (w, h) == (500, 300) and rgb.shape == (60, 100, 3)


@pytest.fixture
def image_dir(tmp_path):
    """Nine posts: five JPEGs, one missing file, one of garbage bytes, one truncated JPEG, one null path."""
    root = tmp_path / "smpd"
    rel = [f"train/u{i % 2}/{i}.jpg" for i in range(9)]
    for i in range(5):
        write_jpeg(root / rel[i], (640, 480) if i % 2 else (500, 700), seed=i)
    (root / rel[6]).write_bytes(np.random.default_rng(1).bytes(5000))
    good = (root / rel[0]).read_bytes()
    (root / rel[7]).write_bytes(good[: len(good) // 3])
    pids = [90, 10, 30, 20, 80, 40, 50, 60, 70]  # unsorted on purpose
    images = pa.table({"pid": pa.array(pids, pa.int64()), "path": pa.array(rel[:8] + [None], pa.string())})
    return root, images


def test_missing_and_corrupt_files_are_flagged_and_counted(image_dir):
    root, images = image_dir
    table, summary = image_stats_table(images, root, ImageStatsConfig(workers=1, progress=False))
    assert table.column_names == ["pid", *COLUMNS] and table["pid"].to_pylist() == sorted(images["pid"].to_pylist())
    assert {k: summary[k] for k in ("images", "processed", "missing", "corrupt")} == \
        {"images": 9, "processed": 5, "missing": 2, "corrupt": 2}
    by_pid = {r["pid"]: r for r in table.to_pylist()}
    bad = images["pid"].to_pylist()[5:]  # missing file, garbage bytes, truncated JPEG, null path
    for pid in bad:
        assert by_pid[pid]["img_missing"] == 1.0 and all(by_pid[pid][c] is None for c in COLUMNS[1:])
    good = by_pid[images["pid"][1].as_py()]  # rel[1]: 640 x 480
    assert good["img_missing"] == 0.0 and (good["img_width"], good["img_height"]) == (640, 480)
    assert good["img_aspect"] == pytest.approx(4 / 3)
    assert good["img_file_bytes"] == (root / "train/u1/1.jpg").stat().st_size


def test_results_do_not_depend_on_workers_or_chunk_size(image_dir):
    root, images = image_dir
    one, s1 = image_stats_table(images, root, ImageStatsConfig(workers=1, chunk_size=64, progress=False))
    two, s2 = image_stats_table(images, root, ImageStatsConfig(workers=2, chunk_size=2, progress=False))
    assert one.equals(two) and s1["corrupt"] == s2["corrupt"] == 2


def test_config_rejects_unknown_keys_and_bad_values():
    cfg = config_from_dict(ImageStatsConfig, "features_image_stats", {"workers": 1, "faces": False})
    assert cfg == ImageStatsConfig(workers=1, faces=False)
    with pytest.raises(ValueError, match="unknown key"):
        config_from_dict(ImageStatsConfig, "features_image_stats", {"worker": 2})
    with pytest.raises(ValueError):
        ImageStatsConfig(workers=0)


def test_stage_writes_one_row_per_post(image_dir, tmp_path):
    root, images = image_dir
    work = tmp_path / "work"
    (work / "data/tables").mkdir(parents=True)
    pids = images["pid"].to_pylist() + [100]  # a post without an images row counts as missing
    pq.write_table(pa.table({"pid": pa.array(pids, pa.int64()), "postdate": pa.array([1000 + p for p in pids])}),
                   work / "data/tables/posts.parquet")
    pq.write_table(images, work / "data/tables/images.parquet")
    params = {"features_image_stats": {"workers": 1, "faces": False, "progress": False}}
    summary = features_image_stats.run(Paths(root=work, smpd=root), params)
    assert (summary["rows"], summary["processed"], summary["missing"], summary["corrupt"]) == (10, 5, 3, 2)
    out = pq.read_table(work / "data/features/image_stats.parquet")
    assert out.column_names[:2] == ["pid", "postdate"] and out["pid"].to_pylist() == sorted(pids)
    assert out["postdate"].to_pylist() == [1000 + p for p in sorted(pids)]
    assert out["img_face_count"].null_count == 10

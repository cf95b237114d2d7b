"""Stage embed_clip: skipped with a clear report without a checkpoint; with (tiny random) weights both
towers embed every post, a missing image gives a zero row, and a rerun reuses every shard."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_encoders import TINY_CLIP, make_root, tiny_clip_checkpoint

from featurestore.embeddings import embedding_arrays
from pipelines import embed_clip


def test_without_weights_the_stage_is_skipped_with_a_reason(tmp_path, caplog):
    root = make_root(tmp_path / "root", n=20)
    summary = embed_clip.run(root, {})
    assert summary["skipped"] is True and "embed_clip.weights" in summary["reason"]
    assert json.loads((root.reports / "embed_clip.json").read_text()) == summary
    assert "skipped" in (root.root / embed_clip.OUT_DIR / "SKIPPED.txt").read_text()
    assert not root.table("embed_clip_image").exists() and not root.table("embed_clip_text").exists()
    assert any("embed_clip skipped" in r.getMessage() for r in caplog.records)
    missing = embed_clip.run(root, {"embed_clip": {"weights": str(tmp_path / "nope.pt")}})
    assert missing["skipped"] is True and "do not exist" in missing["reason"]


def test_with_weights_both_towers_embed_every_post(tmp_path):
    root = make_root(tmp_path / "root", n=30)
    params = {"embed_clip": {"weights": str(tiny_clip_checkpoint(tmp_path / "clip.pt")), "batch_size": 8,
                             "num_workers": 0, "device": "cpu", "progress": False, "shard_size": 16,
                             "options": {"model_cfg": TINY_CLIP, "dim": 32}}}
    first = embed_clip.run(root, params)
    assert first["skipped"] is False
    images = pq.read_table(root.table("images"))
    for tower in ("image", "text"):
        pid, _, emb = embedding_arrays(pq.read_table(root.table(f"embed_clip_{tower}")))
        assert emb.shape == (30, 32) and list(pid) == sorted(images["pid"].to_pylist())
        norms = np.linalg.norm(emb, axis=1)
        if tower == "image":  # the fixture's two missing JPEGs -> zero rows, the rest unit length
            gone = ~np.asarray(pq.read_table(root.table("images"))["exists"].to_pylist())
            assert gone.sum() == 2 and np.allclose(norms[gone], 0) and np.allclose(norms[~gone], 1, atol=1e-5)
        else:
            assert np.allclose(norms, 1, atol=1e-5)
    assert not (root.root / embed_clip.OUT_DIR / "SKIPPED.txt").exists()
    again = embed_clip.run(root, params)
    assert again["image"]["rows_computed"] == 0 and again["image"]["shards_reused"] == 2
    assert again["text"]["rows_computed"] == 0
    with pytest.raises(ValueError, match="unknown option"):
        embed_clip.run(root, {"embed_clip": {**params["embed_clip"], "options": {"colour": 1}}})

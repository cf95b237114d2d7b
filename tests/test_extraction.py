"""Sharded extraction: layout, atomic shards, resuming (after a deleted shard, a stale temp file, and a
SIGKILLed run in a subprocess) with no duplicates and no gaps, identical vectors, and config changes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_encoders import make_root, test_overrides, tiny_clip_checkpoint, tiny_sentence_transformer

from featurestore.embeddings import embedding_arrays
from models.encoders import create_encoder
from models.extraction import MANIFEST, extract, merge_shards, shard_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("extract")
    weights = {"st": tiny_sentence_transformer(d / "w"), "clip": tiny_clip_checkpoint(d / "clip.pt")}
    return make_root(d / "root", n=60), weights


def _text_encoder(weights, **kw):
    return create_encoder("minilm", **{**test_overrides("minilm", weights), **kw})


def test_shards_cover_every_post_once_in_pid_order(setup, tmp_path):
    root, weights = setup
    enc = _text_encoder(weights)
    summary = extract(enc, root, tmp_path, shard_size=7, progress=False)
    assert summary["shards"] == 9 and summary["rows_computed"] == 60 and summary["shards_reused"] == 0
    files = sorted(tmp_path.glob("shard-*.parquet"))
    assert [f.name for f in files] == [shard_path(tmp_path, s).name for s in range(9)]
    assert [pq.read_metadata(f).num_rows for f in files] == [7] * 8 + [4]
    table = merge_shards(tmp_path, enc.read_inputs(root))
    pid, postdate, emb = embedding_arrays(table)
    assert np.array_equal(pid, np.sort(pid)) and len(np.unique(pid)) == 60 and emb.shape == (60, 16)
    assert not list(tmp_path.glob("*.tmp*"))


def test_resume_recomputes_only_missing_shards_identically(setup, tmp_path):
    root, weights = setup
    enc = _text_encoder(weights)
    extract(enc, root, tmp_path, shard_size=8, progress=False)
    full = merge_shards(tmp_path, enc.read_inputs(root))
    shard_path(tmp_path, 3).unlink()  # as if the run died before shard 3 landed ...
    (tmp_path / "shard-00004.parquet.tmp999").write_bytes(b"half a file")  # ... while writing shard 4
    with pytest.raises(ValueError, match="rerun the extraction"):
        merge_shards(tmp_path, enc.read_inputs(root))
    summary = extract(enc, root, tmp_path, shard_size=8, progress=False)
    assert summary["rows_computed"] == 8 and summary["shards_reused"] == 7
    assert merge_shards(tmp_path, enc.read_inputs(root)).equals(full)
    assert not list(tmp_path.glob("*.tmp*"))


def test_processes_write_the_same_shards_as_one_process(setup, tmp_path):
    root, weights = setup
    enc = _text_encoder(weights)
    one = extract(enc, root, tmp_path / "one", shard_size=7, progress=False)
    seen = []
    two = extract(enc, root, tmp_path / "two", shard_size=7, progress=False, processes=2,
                  on_shard=lambda s, n: seen.append((s, n)))
    assert one["rows_computed"] == two["rows_computed"] == 60 and two["shards"] == 9
    assert sorted(seen) == [(s, 9) for s in range(9)]
    for s in range(9):  # every shard bit for bit, whichever process computed it
        assert pq.read_table(shard_path(tmp_path / "two", s)).equals(pq.read_table(shard_path(tmp_path / "one", s)))
    shard_path(tmp_path / "two", 4).unlink()  # resuming with processes recomputes only the missing shard
    again = extract(enc, root, tmp_path / "two", shard_size=7, progress=False, processes=2)
    assert again["rows_computed"] == 7 and again["shards_reused"] == 8
    assert pq.read_table(shard_path(tmp_path / "two", 4)).equals(pq.read_table(shard_path(tmp_path / "one", 4)))


def test_a_failing_process_is_an_error_and_leaves_whole_shards(setup, tmp_path):
    root, weights = setup
    enc = _text_encoder(weights)
    enc.model = None  # every child fails on its first batch
    with pytest.raises(RuntimeError, match="extraction processes failed"):
        extract(enc, root, tmp_path, shard_size=7, progress=False, processes=2)
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob("shard-*"))


def test_changed_config_or_layout_discards_old_shards(setup, tmp_path):
    root, weights = setup
    extract(_text_encoder(weights), root, tmp_path, shard_size=8, progress=False)
    first = json.loads((tmp_path / MANIFEST).read_text())
    summary = extract(_text_encoder(weights, template="{title} | {tags}"), root, tmp_path, shard_size=8,
                      progress=False)
    assert summary["rows_computed"] == 60 and json.loads((tmp_path / MANIFEST).read_text()) != first
    summary = extract(_text_encoder(weights, template="{title} | {tags}"), root, tmp_path, shard_size=16,
                      progress=False)
    assert summary["rows_computed"] == 60 and len(list(tmp_path.glob("shard-*.parquet"))) == 4


KILLED_RUN = """
import json, sys, time
from pathlib import Path
from featurestore.paths import Paths
from models.encoders import create_encoder
from models.extraction import extract
a = json.loads(sys.argv[1])
enc = create_encoder("clip-vit-b-32", **a["overrides"])
extract(enc, Paths(root=Path(a["root"]), smpd=Path(a["smpd"])), Path(a["out"]), shard_size=6, progress=False,
        on_shard=lambda s, n: time.sleep(0.4))  # slow enough to be killed half-way
"""


def test_killed_run_resumes_with_no_duplicates_no_gaps_same_vectors(setup, tmp_path):
    root, weights = setup
    overrides = {**test_overrides("clip-vit-b-32", weights), "num_workers": 1}  # JPEG decoding in a worker
    out = tmp_path / "killed"
    args = json.dumps({"overrides": overrides, "root": str(root.root), "smpd": str(root.smpd), "out": str(out)})
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, args], cwd=REPO, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 60
    while len(list(out.glob("shard-*.parquet"))) < 2:
        assert proc.poll() is None, "the extraction subprocess ended before it could be killed"
        assert time.monotonic() < deadline, "no shards after 60 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its DataLoader worker, mid-way
    proc.wait()
    landed = len(list(out.glob("shard-*.parquet")))
    assert 2 <= landed < 10

    enc = create_encoder("clip-vit-b-32", **overrides)
    summary = extract(enc, root, out, shard_size=6, progress=False)
    assert summary["shards_reused"] == landed and summary["rows_computed"] == 60 - 6 * landed
    resumed = merge_shards(out, enc.read_inputs(root))
    extract(enc, root, tmp_path / "clean", shard_size=6, progress=False)
    clean = merge_shards(tmp_path / "clean", enc.read_inputs(root))
    pid = resumed["pid"].to_numpy()
    assert len(pid) == 60 and len(np.unique(pid)) == 60
    assert resumed.equals(clean)  # bit-identical vectors


def test_embed_minilm_stage_writes_merged_table_and_resumes(setup):
    from pipelines import embed_minilm

    root, weights = setup
    params = {"embed_minilm": {"weights": str(weights["st"]), "shard_size": 16, "batch_size": 8, "device": "cpu",
                               "progress": False, "options": {"dim": 16}}}
    first = embed_minilm.run(root, params)
    table = pq.read_table(root.table("embed_minilm"))
    assert first["rows_computed"] == 60 and table.num_rows == 60 and table.column_names == ["pid", "postdate",
                                                                                          "embedding"]
    assert (root.root / "data/embeddings/minilm/shard-00003.parquet").is_file()
    again = embed_minilm.run(root, params)  # everything on disk already: nothing is recomputed
    assert again["rows_computed"] == 0 and pq.read_table(root.table("embed_minilm")).equals(table)
    assert json.loads((root.reports / "embed_minilm.json").read_text())["rows"] == 60


def test_loaded_encoder_is_loaded_once_per_configuration(setup):
    from models.extraction import _LOADED, loaded_encoder

    _, weights = setup
    _LOADED.clear()
    over = test_overrides("minilm", weights)
    a = loaded_encoder("minilm", over)
    assert loaded_encoder("minilm", dict(over)) is a  # same configuration: the same loaded model
    b = loaded_encoder("minilm", {**over, "batch_size": 3})
    assert b is not a and b.config.batch_size == 3
    loaded_encoder("minilm", {**over, "batch_size": 5})
    assert len(_LOADED) == 2 and loaded_encoder("minilm", over) is not a  # at most two kept: a was dropped
    _LOADED.clear()

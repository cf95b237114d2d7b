"""The encoder registry: ``register_encoder``, ``create_encoder(name, **overrides)``, ``list_encoders()``.

An entry is its config (a dataclass: name, modality, dim, preprocessing, weights location and
the family's own options) plus a factory ``config -> Encoder``. ``create_encoder`` copies the
entry's config with the overrides (an unknown key is an error) and calls the factory.

Every encoder turns the posts of a run into one vector per post, in three steps that
``models.extraction`` drives:

    table = enc.read_inputs(paths)      # pid, postdate + the raw input columns, sorted by pid
    prep = enc.preprocessor()           # picklable row -> item; runs in DataLoader workers
    emb = enc.encode([prep(r) ...])     # a list of items -> (B, D) float32 on the CPU
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from featurestore.named_registry import Registry

MODALITIES = ("text", "image", "tabular")


@dataclass(frozen=True)
class EncoderConfig:
    name: str
    modality: str                # "text" | "image" | "tabular"
    dim: int                     # output width D
    preprocessing: str           # what is done to a post before the model sees it (documentation)
    weights: str | None = None   # local weights (file or directory); None where an entry needs none or has none
    weights_param: str | None = None  # params key that sets ``weights`` (named in the missing-weights error)
    normalize: bool = True       # L2-normalise each output row
    batch_size: int = 256
    num_workers: int = 0         # DataLoader worker processes for preprocessing (JPEG decoding)
    device: str = "auto"         # "auto" (CUDA when available), "cpu", "cuda"
    precision: str = "auto"      # "auto" (fp16 autocast on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"
    precisions: ClassVar[tuple[str, ...]] = ("auto", "fp32", "bf16", "fp16")  # a family may allow more (text: int8)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"encoder {self.name}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.dim < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"encoder {self.name}: dim and batch_size must be >= 1, num_workers >= 0")
        if self.precision not in self.precisions:
            raise ValueError(f"encoder {self.name}: precision must be one of {self.precisions}, got {self.precision!r}")


class Encoder:
    """Base class: an encoder is its config plus the four extraction steps (see the module docstring)."""

    def __init__(self, config: EncoderConfig):
        self.config = config
        self.device = resolve_device(config.device)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dim(self) -> int:
        return self.config.dim

    def read_inputs(self, paths) -> pa.Table:
        """``pid``, ``postdate`` and the input columns of every post of a run, sorted by pid."""
        raise NotImplementedError

    def preprocessor(self) -> Callable[[dict], Any]:
        """A picklable function of one input row (a dict of ``read_inputs`` columns)."""
        raise NotImplementedError

    def sort_key(self, row: dict) -> float:
        """Rows are batched in this order inside a shard (text length: less padding); 0 keeps pid order."""
        return 0.0

    def sort_keys(self, rows: list[dict]) -> np.ndarray:
        """(N,) float64 ``sort_key`` of each row; an encoder overrides it when one call for many rows is cheaper."""
        return np.array([self.sort_key(r) for r in rows], dtype=np.float64)

    def encode(self, items: list) -> torch.Tensor:
        """B preprocessed items -> (B, D) float32 on the CPU (runs under ``torch.inference_mode``)."""
        raise NotImplementedError

    def autocast(self):
        """The autocast context of ``config.precision`` on this encoder's device (a no-op for fp32)."""
        precision = self.config.precision
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)

    def finish(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) model output -> (B, D) float32 CPU, L2-normalised when the config says so."""
        emb = emb.float()
        if self.config.normalize:
            emb = torch.nn.functional.normalize(emb, dim=-1)
        return emb.cpu()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device(device)


class MissingWeightsError(FileNotFoundError):
    """An encoder that needs pretrained weights has none configured (never fall back to random weights)."""


def require_weights(config: EncoderConfig) -> str:
    """The configured weights path; a clear error naming the params key when it is unset or absent."""
    hint = f"set `{config.weights_param}` in params.yaml" if config.weights_param else "pass weights=<path>"
    if not config.weights:
        raise MissingWeightsError(f"encoder {config.name}: no local weights configured; {hint} "
                                  f"(model hubs are not used, and random weights are never used in a real run)")
    if not Path(config.weights).exists():
        raise MissingWeightsError(f"encoder {config.name}: weights {config.weights} do not exist; {hint}")
    return config.weights


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    config: EncoderConfig
    factory: Callable[[EncoderConfig], Encoder]


_ENCODERS: Registry[EncoderEntry] = Registry("encoder")


def register_encoder(config: EncoderConfig, factory: Callable[[EncoderConfig], Encoder]) -> EncoderEntry:
    """Register ``factory`` under ``config.name`` with ``config`` as its default configuration."""
    return _ENCODERS.register(EncoderEntry(name=config.name, config=config, factory=factory))


def list_encoders() -> list[str]:
    return [e.name for e in _ENCODERS]


def encoder_config(name: str, **overrides) -> EncoderConfig:
    """The registered config of ``name`` with ``overrides`` applied; an unknown key raises ValueError."""
    base = _ENCODERS.get(name).config
    known = {f.name for f in fields(base)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"encoder {name}: unknown option(s) {unknown}; known: {sorted(known)}")
    for key, value in overrides.items():  # YAML lists -> tuples (frozen configs hold tuples)
        if isinstance(value, list):
            overrides[key] = tuple(value)
    return replace(base, **overrides)


def create_encoder(name: str, **overrides) -> Encoder:
    """An encoder instance of a registered entry, e.g. ``create_encoder("minilm", batch_size=64)``."""
    return _ENCODERS.get(name).factory(encoder_config(name, **overrides))


def posts_with(paths, table: str, columns: list[str]) -> pa.Table:
    """``pid``, ``postdate`` of every ingested post, left-joined with ``columns`` of ``table``, sorted by pid."""
    posts = pq.read_table(paths.table("posts"), columns=["pid", "postdate"])
    other = pq.read_table(paths.table(table), columns=["pid", *columns])
    return posts.join(other, "pid", join_type="left outer").sort_by("pid").select(["pid", "postdate", *columns])

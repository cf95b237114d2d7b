"""Inference precision of a text encoder: which one ``auto`` means on a device, and putting a model in it.

Measured on MiniLM (BENCHMARKS.md, "MiniLM fast path"): on a CPU with AMX tiles, bf16 *weights*
(the whole model cast, not autocast) run ~3x faster than fp32 with a per-row cosine to fp32 above
0.9999; on a CPU without AMX or avx512_bf16, bf16 is several times *slower* than fp32 (bf16 matmuls
are emulated). torch dynamic int8 (``quantize_dynamic`` of every ``nn.Linear``) is ~1.6x faster but
moves MiniLM embeddings too far (cosine ~0.95: per-tensor activation scales meet BERT's outlier
dimensions), and torch deprecates that API, so ``auto`` never picks it; it stays selectable.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_amx() -> bool:
    """True when this CPU has AMX bf16 tiles (Intel Sapphire Rapids and later), where bf16 matmuls are fast."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x; /proc/cpuinfo otherwise
    if probe is not None:
        return bool(probe())
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> fp16 on CUDA, bf16 on a CPU with AMX, else fp32; any other value is returned checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise ValueError("precision int8 (torch dynamic quantisation) runs on the CPU only")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_has_amx() else "fp32"


def to_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``model`` (eval mode) in a resolved precision: cast weights (fp32/bf16/fp16), or int8 dynamic quantisation.

    int8 replaces every ``nn.Linear`` with a dynamically quantised one (int8 weights per tensor,
    activations quantised per batch); deterministic on a CPU for the same batch.
    """
    if precision == "int8":
        with warnings.catch_warnings():  # torch deprecates eager-mode quantisation (torchao replaces it)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            return torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
    return model.to(DTYPES[precision])

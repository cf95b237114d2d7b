"""open_clip CLIP towers from a LOCAL checkpoint: ``clip-vit-b-32`` (images), ``clip-vit-b-32-text`` (texts).

The architecture is open_clip's config for ``arch`` (or ``model_cfg``, a dict of
``open_clip.model.CLIP`` arguments: embed_dim, vision_cfg, text_cfg; tests use a tiny one);
the weights are an open_clip state-dict checkpoint at ``weights`` (e.g. the
``open_clip_pytorch_model.bin`` of a LAION ViT-B-32 release; set ``quick_gelu`` for OpenAI's).
Nothing is downloaded, and with no checkpoint configured ``create_encoder`` raises
``MissingWeightsError`` naming the params key: a real run never uses random weights.

Images: decoded in DataLoader workers (JPEG draft mode to about the model's input size), then
open_clip's eval transform (shortest side resized bicubic to ``image_size``, centre crop,
OpenAI mean/std). A missing or unreadable image gives an all-zero row. Texts: the PPCL text of
``models.encoders.text``, tokenised with open_clip's BPE tokenizer (truncated to the context).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
import torch

from models.encoders.registry import Encoder, EncoderConfig, posts_with, register_encoder, require_weights
from models.encoders.text import PPCL_TEMPLATE, PostTextEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipConfig(EncoderConfig):
    arch: str = "ViT-B-32"
    model_cfg: dict | None = None  # open_clip CLIP(**model_cfg) instead of the named architecture
    quick_gelu: bool = False       # True for OpenAI-trained checkpoints
    image_root: str | None = None  # directory the image paths are relative to (default: the SMPD dir)
    template: str = PPCL_TEMPLATE


def clip_model_cfg(config: ClipConfig) -> dict:
    import open_clip

    cfg = dict(config.model_cfg) if config.model_cfg else open_clip.get_model_config(config.arch)
    if cfg is None or set(cfg) - {"embed_dim", "vision_cfg", "text_cfg"}:
        raise ValueError(f"encoder {config.name}: {config.arch!r} is not a plain open_clip CLIP architecture")
    return cfg


def build_clip(config: ClipConfig) -> torch.nn.Module:
    """The CLIP model of ``config`` with its checkpoint loaded (strict: every key must match)."""
    import open_clip

    weights = require_weights(config)
    cfg = clip_model_cfg(config)
    if cfg["embed_dim"] != config.dim:
        raise ValueError(f"encoder {config.name}: the architecture gives dim {cfg['embed_dim']}, "
                         f"config says {config.dim}")
    model = open_clip.model.CLIP(**cfg, quick_gelu=config.quick_gelu)
    open_clip.load_checkpoint(model, weights)
    return model.eval()


def load_image(row: dict, root: str, transform) -> torch.Tensor | None:
    """One post's image -> (3, S, S) float tensor, or None when the file is missing or unreadable."""
    from PIL import Image

    path = row.get("path")
    if not path or row.get("exists") is False:
        return None
    size = transform.transforms[0].size  # the Resize step's target
    size = size if isinstance(size, int) else max(size)
    try:
        with Image.open(os.path.join(root, path)) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that is still >= size
            return transform(im.convert("RGB"))
    except (OSError, ValueError) as e:
        log.debug("cannot decode %s: %s", path, e)
        return None


class ClipImageEncoder(Encoder):
    config: ClipConfig

    def __init__(self, config: ClipConfig):
        import open_clip

        super().__init__(config)
        self.model = build_clip(config).to(self.device)
        size = clip_model_cfg(config)["vision_cfg"]["image_size"]
        self.transform = open_clip.image_transform(size, is_train=False)
        self.root: str | None = config.image_root

    def read_inputs(self, paths) -> pa.Table:
        if self.root is None:
            self.root = str(paths.smpd_dir)
        return posts_with(paths, "images", ["path", "exists"])

    def preprocessor(self):
        if self.root is None:
            raise RuntimeError("call read_inputs(paths) first: it fixes the image root")
        return partial(load_image, root=self.root, transform=self.transform)

    def encode(self, items: list[torch.Tensor | None]) -> torch.Tensor:
        """B images (3, S, S) or None -> (B, D); a None row stays all-zero."""
        out = torch.zeros(len(items), self.dim)
        present = [i for i, x in enumerate(items) if x is not None]
        if present:
            pixels = torch.stack([items[i] for i in present]).to(self.device, non_blocking=True)  # (b, 3, S, S)
            with self.autocast():
                emb = self.model.encode_image(pixels)  # (b, D)
            out[present] = self.finish(emb)
        return out


class ClipTextEncoder(PostTextEncoder):
    config: ClipConfig

    def __init__(self, config: ClipConfig):
        from open_clip.tokenizer import SimpleTokenizer

        super().__init__(config)
        self.model = build_clip(config).to(self.device)
        self.tokenizer = SimpleTokenizer(context_length=clip_model_cfg(config)["text_cfg"].get("context_length", 77))

    def encode(self, items: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(items).to(self.device)  # (B, T) BPE ids, truncated to the context
        with self.autocast():
            emb = self.model.encode_text(tokens)  # (B, D)
        return self.finish(emb)


_B32 = dict(dim=512, weights=None, weights_param="embed_clip.weights")
register_encoder(ClipConfig(
    name="clip-vit-b-32", modality="image", num_workers=2, **_B32,
    preprocessing="JPEG decode (draft scale), bicubic resize of the shortest side to 224, centre crop 224, "
                  "OpenAI mean/std; open_clip ViT-B-32 image tower; L2-normalised; missing image -> zeros"),
    ClipImageEncoder)
register_encoder(ClipConfig(
    name="clip-vit-b-32-text", modality="text", **_B32,
    preprocessing="PPCL text 'The title of the image is {title} and the tags are {tags}'; open_clip BPE, "
                  "77 tokens; open_clip ViT-B-32 text tower; L2-normalised"),
    ClipTextEncoder)

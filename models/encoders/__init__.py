"""Encoder registry (timm / open_clip style): ``create_encoder(name, **overrides)``, ``list_encoders()``.

Entries: ``minilm`` (text, 384), ``clip-vit-b-32`` (image, 512), ``clip-vit-b-32-text`` (text,
512), ``image_stats`` (tabular, 29). ``torch`` is needed; sentence-transformers / open_clip are
imported only when such an encoder is created.
"""

from models.encoders.registry import (Encoder, EncoderConfig, MissingWeightsError, create_encoder, encoder_config,
                                      list_encoders, register_encoder)
from models.encoders import clip, tabular, text  # noqa: F401  (register the entries)

__all__ = ["Encoder", "EncoderConfig", "MissingWeightsError", "create_encoder", "encoder_config", "list_encoders",
           "register_encoder"]

"""Prototype-CLIP head: diverse class prototypes, CoOp prompts, adapter + cross-modal attention network,
the ``ProtoClipRegressor`` estimator and the ``protoclip_features`` table builder."""

from models.protoclip.estimator import ProtoClipRegressor
from models.protoclip.modules import ProtoClipConfig, ProtoClipNet
from models.protoclip.prototypes import Prototypes, class_prototypes, farthest_point_order, modality_prototypes

__all__ = ["ProtoClipConfig", "ProtoClipNet", "ProtoClipRegressor", "Prototypes", "class_prototypes",
           "farthest_point_order", "modality_prototypes"]

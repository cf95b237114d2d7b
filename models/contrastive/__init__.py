"""Contrastive regression: RNC / WRCR losses (vectorised over the batch) and the projection heads."""

from models.contrastive.heads import ContrastiveRegressionNet, HeadConfig, ProjectionHead
from models.contrastive.losses import (SIMILARITIES, WEIGHTINGS, pairwise_logits, ranked_contrastive_loss, rnc_loss,
                                       wrcr_loss)

__all__ = ["ContrastiveRegressionNet", "HeadConfig", "ProjectionHead", "SIMILARITIES", "WEIGHTINGS",
           "pairwise_logits", "ranked_contrastive_loss", "rnc_loss", "wrcr_loss"]

"""PPCL: popularity prediction with contrastive learning (CRD, UISD, UID SupCon tasks) on frozen embeddings."""

from models.ppcl.estimator import PPCLRegressor
from models.ppcl.losses import (TaskWeights, hierarchical_supcon_loss, label_positive_mask, path_positive_mask,
                                supcon_loss, total_loss)
from models.ppcl.modules import PPCLConfig, PPCLInputs, PPCLNet
from models.ppcl.sampler import HierarchicalBatchSampler, hierarchical_batches, uniform_batches

__all__ = ["HierarchicalBatchSampler", "PPCLConfig", "PPCLInputs", "PPCLNet", "PPCLRegressor", "TaskWeights",
           "hierarchical_batches", "hierarchical_supcon_loss", "label_positive_mask", "path_positive_mask",
           "supcon_loss", "total_loss", "uniform_batches"]

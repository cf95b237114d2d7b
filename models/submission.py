"""SMP Challenge submission file: one entry per unlabelled test post."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SubmissionConfig:
    # The issue asks for "VERSION 1.0" and bare Pids; FORMAT.md §11 shows the challenge site's
    # "VERSION 1.2" with "post<Pid>" ids. Both are one setting away.
    version: str = "VERSION 1.0"
    post_id_prefix: str = ""
    decimals: int = 4
    external_data_used: str = "false"
    external_data_details: str = ""


def build_submission(pids: np.ndarray, scores: np.ndarray, cfg: SubmissionConfig) -> dict:
    """The submission object, entries sorted by Pid."""
    pids = np.asarray(pids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if len(pids) != len(scores) or len(np.unique(pids)) != len(pids):
        raise ValueError("submission needs one score per distinct Pid")
    if not np.all(np.isfinite(scores)):
        raise ValueError("submission scores must be finite")
    order = np.argsort(pids, kind="stable")
    result = [{"post_id": f"{cfg.post_id_prefix}{int(p)}", "popularity_score": round(float(s), cfg.decimals)}
              for p, s in zip(pids[order], scores[order])]
    return {"version": cfg.version, "result": result,
            "external_data": {"used": cfg.external_data_used, "details": cfg.external_data_details}}


def check_submission(sub: dict, expected_pids: set[int], cfg: SubmissionConfig) -> None:
    """Raise ValueError unless ``sub`` has exactly one finite score for every expected Pid."""
    if set(sub) != {"version", "result", "external_data"}:
        raise ValueError(f"submission keys {sorted(sub)}")
    ids = [r["post_id"] for r in sub["result"]]
    got = {int(i[len(cfg.post_id_prefix):]) for i in ids}
    if len(ids) != len(got) or got != expected_pids:
        raise ValueError(f"submission covers {len(got)} posts ({len(ids)} entries), expected {len(expected_pids)}")
    if not all(np.isfinite(r["popularity_score"]) for r in sub["result"]):
        raise ValueError("non-finite popularity_score in submission")

"""Stage features_history: point-in-time statistics of visible, strictly earlier labels (user, user x category, category levels)."""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ("features_history",)
run, main = make_stage("history", __doc__)

if __name__ == "__main__":
    main()

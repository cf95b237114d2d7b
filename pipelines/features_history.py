"""Stage features_history: point-in-time statistics of visible, strictly earlier labels (user, user x category, category levels)."""

from __future__ import annotations

from pipelines.feature_stage import run_feature_stage
from pipelines.paths import Paths
from pipelines.stage import stage_main

PARAMS: tuple[str, ...] = ("features_history",)


def run(paths: Paths, params: dict) -> dict:
    return run_feature_stage("history", paths, params)


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()

"""Stage features_text: title/tag counts and flags; TF-IDF + truncated SVD of title and tags, fitted on the train split."""

from __future__ import annotations

from pipelines.feature_stage import run_feature_stage
from pipelines.paths import Paths
from pipelines.stage import stage_main

PARAMS: tuple[str, ...] = ("features_text",)


def run(paths: Paths, params: dict) -> dict:
    return run_feature_stage("text", paths, params)


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()

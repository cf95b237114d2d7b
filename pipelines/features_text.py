"""Stage features_text: title/tag counts and flags; TF-IDF + truncated SVD of title and tags, fitted on the train split."""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ("features_text",)
run, main = make_stage("text", __doc__)

if __name__ == "__main__":
    main()

"""Stage features_crawled: the unofficial crawled user statistics of each post's Pathalias (FORMAT.md §10).

A snapshot crawled after the posts were published: it holds no label of this data set but is
not point in time, so models read it only when `feature_groups` in params.yaml lists it.
"""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ()
run, main = make_stage("crawled", __doc__)

if __name__ == "__main__":
    main()

"""Stage features_ids: the post's user as a train-vocabulary categorical code (``id_user_code``).

Not a default input of every learner: high-cardinality identifiers suit learners with native
categorical handling (CatBoost, PPCL); `train_stack.learner_feature_groups` says who reads it.
"""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ()
run, main = make_stage("ids", __doc__)

if __name__ == "__main__":
    main()

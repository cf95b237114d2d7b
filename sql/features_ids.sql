-- Feature group `ids` (columns prefixed id_): identifiers as categorical codes, for learners that
-- model them natively (CatBoost's ordered target statistics, PPCL's user embedding and identity task).
-- Vocabulary: the fitted relation vocab_user (sql/fitted_vocab_user.sql), TRAIN split only: a
-- user with no train post gets NULL, exactly like an unseen category in `baseline`. A code carries
-- no label; what a learner makes of it is fitted on train labels only (the stack's folds and refits).
SELECT
    p.pid,
    p.postdate,
    v.code AS id_user_code
FROM posts p
LEFT JOIN vocab_user v USING (uid)
ORDER BY p.pid

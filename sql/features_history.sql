-- Feature group `history` (point in time). For each post: statistics of the labels of posts
-- published STRICTLY EARLIER whose labels are visible at prediction time (split.label_visible,
-- i.e. train labels only). A post's own label, val/test labels and later labels never enter.
-- Parameters: $half_life_days (time decay of the decayed means), $smoothing (pseudo-count m of
-- the smoothed category means, shrunk towards the running global mean of visible labels).
-- User and user x category statistics are windows over the user's own posts; the global and
-- category-level counts and sums are read from the fitted relation `history_running`
-- (sql/fitted_history_running.sql) by ASOF joins, so a post's row needs only its user's posts
-- and one `history_running` row per level.
-- Sums run over labels in integer micro-units (HUGEINT), so means, standard deviations and
-- smoothed means do not depend on summation order: rows that contribute no label (val/test/
-- predict posts) can never change another row's value, not even in the last bit. Decayed means
-- are float sums and are rounded to 1e-9 for the same reason.
WITH base AS (
    SELECT p.pid, p.uid, p.postdate, c.category,
           coalesce(strlen(c.category)::VARCHAR || ':' || c.category, '~')       AS k_cat,  -- history_running keys
           coalesce(strlen(c.subcategory)::VARCHAR || ':' || c.subcategory, '~') AS k_sub,
           coalesce(strlen(c.concept)::VARCHAR || ':' || c.concept, '~')         AS k_con,
           CASE WHEN s.label_visible THEN l.label END                       AS y,
           CASE WHEN s.label_visible THEN CAST(round(l.label * 1000000) AS HUGEINT) END AS yi,  -- micro-units
           p.postdate * 2097152 + p.pid                                     AS order_key  -- latest earlier post, ties by pid
    FROM posts p
    JOIN split s USING (pid)
    JOIN categories c USING (pid)
    LEFT JOIN labels l USING (pid)
),
weighted AS (
    -- 2^((t_i - t0) / half-life): the decay 2^(-(t - t_i) / half-life) up to a factor that cancels in
    -- the ratio; t0 is the user's first postdate, so a user's rows alone determine it
    SELECT b.*,
           CASE WHEN b.y IS NOT NULL THEN exp(ln(2) * (b.postdate - min(b.postdate) OVER (PARTITION BY b.uid))
                                              / ($half_life_days * 86400.0)) END AS wt
    FROM base b
),
agg AS (
    SELECT pid, postdate,
        count(yi) OVER u AS n_u, sum(yi) OVER u AS s_u, sum(yi * yi) OVER u AS q_u,
        median(y) OVER u                                     AS hist_user_median,
        min(y) OVER u                                        AS hist_user_min,
        max(y) OVER u                                        AS hist_user_max,
        arg_max(y, CASE WHEN y IS NOT NULL THEN order_key END) OVER u AS hist_user_last,
        round(sum(wt * y) OVER u / sum(wt) OVER u, 9)        AS hist_user_decayed_mean,
        count(yi) OVER uc AS n_uc, sum(yi) OVER uc AS s_uc, sum(yi * yi) OVER uc AS q_uc,
        median(y) OVER uc                                    AS hist_user_cat_median,
        min(y) OVER uc                                       AS hist_user_cat_min,
        max(y) OVER uc                                       AS hist_user_cat_max,
        arg_max(y, CASE WHEN y IS NOT NULL THEN order_key END) OVER uc AS hist_user_cat_last,
        round(sum(wt * y) OVER uc / sum(wt) OVER uc, 9)      AS hist_user_cat_decayed_mean
    FROM weighted
    WINDOW
        u  AS (PARTITION BY uid ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        uc AS (PARTITION BY uid, category ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
running AS (
    -- the last history_running row strictly before the post: visible labels of earlier posts
    SELECT b.pid,
        coalesce(g.n, 0)  AS n_all, coalesce(g.s, 0)  AS s_all,
        coalesce(ca.n, 0) AS n_cat, coalesce(ca.s, 0) AS s_cat,
        coalesce(sc.n, 0) AS n_sub, coalesce(sc.s, 0) AS s_sub,
        coalesce(co.n, 0) AS n_con, coalesce(co.s, 0) AS s_con
    FROM base b
    ASOF LEFT JOIN history_running g  ON g.level = 'all' AND g.postdate < b.postdate
    ASOF LEFT JOIN history_running ca ON ca.level = 'category' AND ca.key = b.k_cat AND ca.postdate < b.postdate
    ASOF LEFT JOIN history_running sc ON sc.level = 'subcategory' AND sc.key = b.k_cat || b.k_sub
                                         AND sc.postdate < b.postdate
    ASOF LEFT JOIN history_running co ON co.level = 'concept' AND co.key = b.k_con AND co.postdate < b.postdate
)
SELECT
    pid, postdate,
    n_u::DOUBLE                                               AS hist_user_count,
    s_u::DOUBLE / n_u / 1e6                                   AS hist_user_mean,
    hist_user_median::DOUBLE                                  AS hist_user_median,
    CASE WHEN n_u > 1 THEN sqrt((n_u * q_u - s_u * s_u)::DOUBLE / (n_u * (n_u - 1))) / 1e6 END AS hist_user_std,
    hist_user_min, hist_user_max, hist_user_last, hist_user_decayed_mean,
    n_uc::DOUBLE                                              AS hist_user_cat_count,
    s_uc::DOUBLE / n_uc / 1e6                                 AS hist_user_cat_mean,
    hist_user_cat_median::DOUBLE                              AS hist_user_cat_median,
    CASE WHEN n_uc > 1 THEN sqrt((n_uc * q_uc - s_uc * s_uc)::DOUBLE / (n_uc * (n_uc - 1))) / 1e6 END AS hist_user_cat_std,
    hist_user_cat_min, hist_user_cat_max, hist_user_cat_last, hist_user_cat_decayed_mean,
    n_cat::DOUBLE AS hist_category_count,
    (s_cat::DOUBLE / 1e6 + $smoothing * s_all::DOUBLE / 1e6 / nullif(n_all, 0)) / (n_cat + $smoothing) AS hist_category_smoothed_mean,
    n_sub::DOUBLE AS hist_subcategory_count,
    (s_sub::DOUBLE / 1e6 + $smoothing * s_all::DOUBLE / 1e6 / nullif(n_all, 0)) / (n_sub + $smoothing) AS hist_subcategory_smoothed_mean,
    n_con::DOUBLE AS hist_concept_count,
    (s_con::DOUBLE / 1e6 + $smoothing * s_all::DOUBLE / 1e6 / nullif(n_all, 0)) / (n_con + $smoothing) AS hist_concept_smoothed_mean
FROM agg
JOIN running USING (pid)
ORDER BY pid

-- Feature group `history` (point in time). For each post: statistics of the labels of posts
-- published STRICTLY EARLIER whose labels are visible at prediction time (split.label_visible,
-- i.e. train labels only). A post's own label, val/test labels and later labels never enter.
-- Parameters: $half_life_days (time decay of the decayed means), $smoothing (pseudo-count m of
-- the smoothed category means, shrunk towards the running global mean of visible labels).
WITH base AS (
    SELECT p.pid, p.uid, p.postdate, c.category, c.subcategory, c.concept,
           CASE WHEN s.label_visible THEN l.label END                       AS y,
           p.postdate * 2097152 + p.pid                                     AS order_key  -- latest earlier post, ties by pid
    FROM posts p
    JOIN split s USING (pid)
    JOIN categories c USING (pid)
    LEFT JOIN labels l USING (pid)
),
weighted AS (
    -- 2^((t_i - t0) / half-life): the decay 2^(-(t - t_i) / half-life) up to a factor that cancels in the ratio
    SELECT b.*,
           CASE WHEN b.y IS NOT NULL THEN
               exp(ln(2) * (b.postdate - m.t0) / ($half_life_days * 86400.0)) END AS wt
    FROM base b, (SELECT min(postdate) AS t0 FROM base) m
),
agg AS (
    SELECT pid, postdate,
        count(y) OVER u                                      AS hist_user_count,
        avg(y) OVER u                                        AS hist_user_mean,
        median(y) OVER u                                     AS hist_user_median,
        stddev_samp(y) OVER u                                AS hist_user_std,
        min(y) OVER u                                        AS hist_user_min,
        max(y) OVER u                                        AS hist_user_max,
        arg_max(y, CASE WHEN y IS NOT NULL THEN order_key END) OVER u AS hist_user_last,
        sum(wt * y) OVER u / sum(wt) OVER u                  AS hist_user_decayed_mean,
        count(y) OVER uc                                     AS hist_user_cat_count,
        avg(y) OVER uc                                       AS hist_user_cat_mean,
        median(y) OVER uc                                    AS hist_user_cat_median,
        stddev_samp(y) OVER uc                               AS hist_user_cat_std,
        min(y) OVER uc                                       AS hist_user_cat_min,
        max(y) OVER uc                                       AS hist_user_cat_max,
        arg_max(y, CASE WHEN y IS NOT NULL THEN order_key END) OVER uc AS hist_user_cat_last,
        sum(wt * y) OVER uc / sum(wt) OVER uc                AS hist_user_cat_decayed_mean,
        count(y) OVER g  AS n_all, sum(y) OVER g  AS s_all,
        count(y) OVER ca AS n_cat, sum(y) OVER ca AS s_cat,
        count(y) OVER sc AS n_sub, sum(y) OVER sc AS s_sub,
        count(y) OVER co AS n_con, sum(y) OVER co AS s_con
    FROM weighted
    WINDOW
        u  AS (PARTITION BY uid ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        uc AS (PARTITION BY uid, category ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        g  AS (ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        ca AS (PARTITION BY category ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        sc AS (PARTITION BY category, subcategory ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        co AS (PARTITION BY concept ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT
    pid, postdate,
    hist_user_count::DOUBLE AS hist_user_count, hist_user_mean, hist_user_median::DOUBLE AS hist_user_median,
    hist_user_std, hist_user_min, hist_user_max, hist_user_last, hist_user_decayed_mean,
    hist_user_cat_count::DOUBLE AS hist_user_cat_count, hist_user_cat_mean,
    hist_user_cat_median::DOUBLE AS hist_user_cat_median, hist_user_cat_std, hist_user_cat_min,
    hist_user_cat_max, hist_user_cat_last, hist_user_cat_decayed_mean,
    n_cat::DOUBLE AS hist_category_count,
    (coalesce(s_cat, 0) + $smoothing * s_all / n_all) / (n_cat + $smoothing) AS hist_category_smoothed_mean,
    n_sub::DOUBLE AS hist_subcategory_count,
    (coalesce(s_sub, 0) + $smoothing * s_all / n_all) / (n_sub + $smoothing) AS hist_subcategory_smoothed_mean,
    n_con::DOUBLE AS hist_concept_count,
    (coalesce(s_con, 0) + $smoothing * s_all / n_all) / (n_con + $smoothing) AS hist_concept_smoothed_mean
FROM agg
ORDER BY pid

-- Fitted relation `history_running` (group `history`): running counts and sums of the visible
-- labels (split.label_visible, label not null) per level and key, one row per key and distinct
-- postdate that has >= 1 visible label, cumulative up to AND including that postdate.
--   level: 'all' | 'category' | 'subcategory' | 'concept'
--   key:   '' for 'all'; else each component encoded as '<utf-8 bytes>:<value>' or '~' for NULL,
--          concatenated (subcategory carries its category), so NULL is a key of its own and
--          distinct values never collide (featurestore.sql_online.level_keys builds the same).
--   n:     count of visible labels; s: sum of the labels in integer micro-units (round(label * 1e6)).
-- A post at time t reads, per level, the last row of its key with postdate < t (ASOF join).
WITH visible AS (
    SELECT p.postdate,
           coalesce(strlen(c.category)::VARCHAR || ':' || c.category, '~')       AS k_cat,
           coalesce(strlen(c.subcategory)::VARCHAR || ':' || c.subcategory, '~') AS k_sub,
           coalesce(strlen(c.concept)::VARCHAR || ':' || c.concept, '~')         AS k_con,
           CAST(round(l.label * 1000000) AS HUGEINT)                             AS yi
    FROM posts p
    JOIN split s USING (pid)
    JOIN categories c USING (pid)
    JOIN labels l USING (pid)
    WHERE s.label_visible AND l.label IS NOT NULL
),
keyed AS (
    SELECT 'all' AS level, '' AS key, postdate, yi FROM visible
    UNION ALL SELECT 'category', k_cat, postdate, yi FROM visible
    UNION ALL SELECT 'subcategory', k_cat || k_sub, postdate, yi FROM visible
    UNION ALL SELECT 'concept', k_con, postdate, yi FROM visible
),
per_date AS (
    SELECT level, key, postdate, count(*) AS n, sum(yi) AS s FROM keyed GROUP BY level, key, postdate
)
SELECT level, key, postdate,
       (sum(n) OVER w)::BIGINT AS n,
       (sum(s) OVER w)::BIGINT AS s
FROM per_date
WINDOW w AS (PARTITION BY level, key ORDER BY postdate ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY level, key, postdate

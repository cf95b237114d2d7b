-- MAE and bias (mean of pred - label) of the stacked prediction per category and per subcategory on
-- one split; level says which. Bind $split (train, val or test) and $top (rows kept per level, the
-- most frequent first). Posts without a category row count under '(none)'.
WITH err AS (
    SELECT coalesce(c.category, '(none)') AS category, coalesce(c.subcategory, '(none)') AS subcategory,
           pr.pred - pr.label AS error
    FROM predictions_stack pr
    LEFT JOIN categories c USING (pid)
    WHERE pr.split = $split AND pr.label IS NOT NULL AND pr.pred IS NOT NULL
), grouped AS (
    SELECT CASE WHEN grouping(subcategory) = 1 THEN 'category' ELSE 'subcategory' END AS level,
           category,
           CASE WHEN grouping(subcategory) = 1 THEN NULL ELSE subcategory END AS subcategory,
           count(*) AS n, avg(abs(error)) AS mae, avg(error) AS bias
    FROM err
    GROUP BY GROUPING SETS ((category), (category, subcategory))
)
SELECT level, category, subcategory, n, mae, bias
FROM grouped
QUALIFY row_number() OVER (PARTITION BY level ORDER BY n DESC, category, subcategory) <= $top
ORDER BY level, n DESC, category, subcategory;

-- The worst over-predictions (pred > label) and under-predictions (pred < label) of the stacked model
-- per label bin [lo, hi) on one split, largest |error| first (ties: smaller pid first).
-- Bind $split, $top (posts per bin and direction) and $lo, $hi (DOUBLE[] of equal length: the bins).
WITH bins AS (
    SELECT unnest($lo::DOUBLE[]) AS lo, unnest($hi::DOUBLE[]) AS hi
), err AS (
    SELECT pid, label, pred, pred - label AS error,
           CASE WHEN pred > label THEN 'over' ELSE 'under' END AS direction
    FROM predictions_stack
    WHERE split = $split AND label IS NOT NULL AND pred IS NOT NULL AND pred <> label
), ranked AS (
    SELECT b.lo, b.hi, e.*,
           row_number() OVER (PARTITION BY b.lo, e.direction ORDER BY abs(e.error) DESC, e.pid) AS rnk
    FROM err e
    JOIN bins b ON e.label >= b.lo AND e.label < b.hi
    QUALIFY rnk <= $top
)
SELECT r.lo, r.hi, r.direction, r.rnk AS rank, r.pid, p.uid, p.postdate,
       c.category, c.subcategory, c.concept, t.title,
       r.label, r.pred, r.error, i.path AS image, coalesce(i."exists", false) AS image_exists
FROM ranked r
LEFT JOIN posts p USING (pid)
LEFT JOIN categories c USING (pid)
LEFT JOIN text t USING (pid)
LEFT JOIN images i USING (pid)
ORDER BY r.lo, r.direction, r.rnk;

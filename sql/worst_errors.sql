-- The largest absolute errors of the model on a split. Bind $split (val or test).
SELECT pr.pid, p.uid, c.category, c.subcategory, t.title, pr.label, round(pr.pred, 3) AS pred,
       round(pr.pred - pr.label, 3) AS error
FROM predictions pr
JOIN posts p USING (pid)
JOIN categories c USING (pid)
JOIN text t USING (pid)
WHERE pr.split = $split AND pr.label IS NOT NULL
ORDER BY abs(pr.pred - pr.label) DESC
LIMIT 50;

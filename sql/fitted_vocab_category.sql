-- Fitted relation `vocab_category` (group `baseline`): code of each category seen in the TRAIN
-- split, 0..k-1 in sorted order. Values never seen in train have no row (their code is NULL).
SELECT category, (row_number() OVER (ORDER BY category) - 1)::INTEGER AS code
FROM (SELECT DISTINCT c.category
      FROM categories c JOIN split s USING (pid)
      WHERE s.split = 'train' AND c.category IS NOT NULL)
ORDER BY code

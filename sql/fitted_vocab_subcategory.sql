-- Fitted relation `vocab_subcategory` (group `baseline`): code of each subcategory seen in the TRAIN
-- split, 0..k-1 in sorted order. Values never seen in train have no row (their code is NULL).
SELECT subcategory, (row_number() OVER (ORDER BY subcategory) - 1)::INTEGER AS code
FROM (SELECT DISTINCT c.subcategory
      FROM categories c JOIN split s USING (pid)
      WHERE s.split = 'train' AND c.subcategory IS NOT NULL)
ORDER BY code

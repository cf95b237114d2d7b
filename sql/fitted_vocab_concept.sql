-- Fitted relation `vocab_concept` (group `baseline`): code of each concept seen in the TRAIN
-- split, 0..k-1 in sorted order. Values never seen in train have no row (their code is NULL).
SELECT concept, (row_number() OVER (ORDER BY concept) - 1)::INTEGER AS code
FROM (SELECT DISTINCT c.concept
      FROM categories c JOIN split s USING (pid)
      WHERE s.split = 'train' AND c.concept IS NOT NULL)
ORDER BY code

INSERT INTO ai_agent_kb_predict_income.income_evaluation_features
-- Every parseable record, partitioned by batch so a prediction task reads only its own batch.
-- Athena writes at most 100 partitions per statement: stepkit renders this once per group of
-- 100 batches (2 statements); each reads only its own staging partition.
SELECT
  id,
  age,
  years_since_first_job,
  job_tenure_years,
  seniority_level,
  education_level,
  degree_count,
  homeowner,
  household_size,
  num_credit_cards,
  credit_history_years,
  has_retirement_account,
  device_type,

  batch_id
FROM ai_agent_kb_predict_income.income_staging_features
WHERE parse_ok
  AND batch_group = 1

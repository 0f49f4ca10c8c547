INSERT INTO ai_agent_kb_rescore_age.rescore_age_evaluation_features
-- Every parseable record, partitioned by batch so a prediction task reads only its own batch.
-- Athena writes at most 100 partitions per statement: stepkit renders this once per group of
-- 100 batches (9 statements); each reads only its own staging partition.
SELECT
  id,
  years_since_first_job,
  job_tenure_years,
  num_jobs,
  seniority_level,
  education_level,
  graduation_year,
  degree_count,
  num_children,
  marital_status,
  homeowner,
  household_size,
  income_usd,
  num_credit_cards,
  credit_history_years,
  has_retirement_account,
  account_age_years,
  posts_per_week,
  night_activity_share,
  emoji_rate,
  device_type,
  email_domain_age_years,

  batch_id
FROM ai_agent_kb_rescore_age.rescore_age_staging_features
WHERE parse_ok
  AND batch_group = 7

CREATE TABLE ai_agent_kb_homeowner.homeowner_training_features
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-homeowner/tables/homeowner_training_features/${run_id}/'
) AS
-- The training sample: 10.0% of labelled rows, chosen by a hash of the id (deterministic;
-- TABLESAMPLE would scan as much and change every run).
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

  sample_bucket
FROM ai_agent_kb_homeowner.homeowner_staging_features
WHERE parse_ok
  AND homeowner IS NOT NULL
  AND sample_bucket < 1000

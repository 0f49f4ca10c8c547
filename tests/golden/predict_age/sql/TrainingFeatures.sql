CREATE TABLE ai_agent_kb_predict_age.predict_age_real_training_features_14m
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-age/tables/predict_age_real_training_features_14m/${run_id}/'
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

  sample_bucket
FROM ai_agent_kb_predict_age.predict_age_staging_parsed_features_2025q3
WHERE parse_ok
  AND age IS NOT NULL
  AND sample_bucket < 1000

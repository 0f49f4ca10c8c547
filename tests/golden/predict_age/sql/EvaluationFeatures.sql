CREATE TABLE ai_agent_kb_predict_age.predict_age_full_evaluation_features_378m
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-age/tables/predict_age_full_evaluation_features_378m/${run_id}/',
  partitioned_by = ARRAY['batch_id']
) AS
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
FROM ai_agent_kb_predict_age.predict_age_staging_parsed_features_2025q3
WHERE parse_ok
  AND batch_group = 0

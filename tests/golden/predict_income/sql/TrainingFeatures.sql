CREATE TABLE ai_agent_kb_predict_income.income_training_features
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/ml/predict-income/tables/income_training_features/${run_id}/'
) AS
-- The training sample: 5.0% of labelled rows, chosen by a hash of the id (deterministic;
-- TABLESAMPLE would scan as much and change every run).
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

  sample_bucket
FROM ai_agent_kb_predict_income.income_staging_features
WHERE parse_ok
  AND income_usd IS NOT NULL
  AND sample_bucket < 500

CREATE TABLE ai_agent_kb_predict_income.income_training_targets
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/ml/predict-income/tables/income_training_targets/${run_id}/'
) AS
-- Known targets of the training sample (same rows as the training features).
SELECT
  id,
  income_usd
FROM ai_agent_kb_predict_income.income_staging_features
WHERE parse_ok
  AND income_usd IS NOT NULL
  AND sample_bucket < 500

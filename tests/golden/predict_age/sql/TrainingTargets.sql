CREATE TABLE ai_agent_kb_predict_age.predict_age_real_training_targets_14m
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-age/tables/predict_age_real_training_targets_14m/${run_id}/'
) AS
-- Known targets of the training sample (same rows as the training features).
SELECT
  id,
  age
FROM ai_agent_kb_predict_age.predict_age_staging_parsed_features_2025q3
WHERE parse_ok
  AND age IS NOT NULL
  AND sample_bucket < 1000

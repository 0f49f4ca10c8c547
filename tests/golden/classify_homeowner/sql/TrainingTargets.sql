CREATE TABLE ai_agent_kb_homeowner.homeowner_training_targets
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-homeowner/tables/homeowner_training_targets/${run_id}/'
) AS
-- Known targets of the training sample (same rows as the training features).
SELECT
  id,
  homeowner
FROM ai_agent_kb_homeowner.homeowner_staging_features
WHERE parse_ok
  AND homeowner IS NOT NULL
  AND sample_bucket < 1000

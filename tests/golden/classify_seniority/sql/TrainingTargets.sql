CREATE TABLE ai_agent_kb_seniority.seniority_training_targets
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-seniority/tables/seniority_training_targets/${run_id}/'
) AS
-- Known targets of the training sample (same rows as the training features).
SELECT
  id,
  seniority_level
FROM ai_agent_kb_seniority.seniority_staging_features
WHERE parse_ok
  AND seniority_level IS NOT NULL
  AND sample_bucket < 1000

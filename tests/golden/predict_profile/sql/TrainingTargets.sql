CREATE TABLE ai_agent_kb_profile.profile_training_targets
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-profile/tables/profile_training_targets/${run_id}/'
) AS
-- Known targets of the training sample (same rows as the training features).
SELECT
  id,
  age,
  homeowner
FROM ai_agent_kb_profile.profile_parsed_2025q3
WHERE parse_ok
  AND (age IS NOT NULL OR homeowner IS NOT NULL)
  AND sample_bucket < 1000

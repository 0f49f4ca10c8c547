CREATE TABLE ai_agent_kb_seniority.seniority_final_results
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-seniority/tables/seniority_final_results/${run_id}/'
) AS
-- Exactly one row per distinct source id: the model's prediction, or the default with the reason.
SELECT
  s.id,
  coalesce(p.predicted_seniority_level, 'mid') AS predicted_seniority_level,
  p.probability,
  p.class_probabilities,
  CASE
    WHEN p.id IS NOT NULL THEN 'model'
    WHEN NOT s.parse_ok THEN 'default_unparseable'
    ELSE 'default_unscored'
  END AS prediction_source,
  s.seniority_level AS known_seniority_level,
  p.model_name,
  p.model_version,
  '${run_id}' AS run_id
FROM ai_agent_kb_seniority.seniority_staging_features s
LEFT JOIN ai_agent_kb_seniority.seniority_predictions p ON p.id = s.id

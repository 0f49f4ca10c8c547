CREATE TABLE ai_agent_kb_rescore_age.rescore_age_final_results
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/rescore-age/tables/rescore_age_final_results/${run_id}/'
) AS
-- Exactly one row per distinct source id: the model's prediction, or the default with the reason.
SELECT
  s.id,
  coalesce(p.predicted_age, 38) AS predicted_age,
  p.lower_bound,
  p.upper_bound,
  coalesce(p.confidence_score, 0.0) AS confidence_score,
  CASE
    WHEN p.id IS NOT NULL THEN 'model'
    WHEN NOT s.parse_ok THEN 'default_unparseable'
    ELSE 'default_unscored'
  END AS prediction_source,
  s.age AS known_age,
  p.model_name,
  p.model_version,
  '${run_id}' AS run_id
FROM ai_agent_kb_rescore_age.rescore_age_staging_features s
LEFT JOIN ai_agent_kb_rescore_age.rescore_age_predictions p ON p.id = s.id

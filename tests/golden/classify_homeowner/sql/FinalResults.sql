CREATE TABLE ai_agent_kb_homeowner.homeowner_final_results
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/classify-homeowner/tables/homeowner_final_results/${run_id}/'
) AS
-- Exactly one row per distinct source id: the model's prediction, or the default with the reason.
SELECT
  s.id,
  coalesce(p.predicted_homeowner, false) AS predicted_homeowner,
  p.probability,
  CASE
    WHEN p.id IS NOT NULL THEN 'model'
    WHEN NOT s.parse_ok THEN 'default_unparseable'
    ELSE 'default_unscored'
  END AS prediction_source,
  s.homeowner AS known_homeowner,
  p.model_name,
  p.model_version,
  '${run_id}' AS run_id
FROM ai_agent_kb_homeowner.homeowner_staging_features s
LEFT JOIN ai_agent_kb_homeowner.homeowner_predictions p ON p.id = s.id

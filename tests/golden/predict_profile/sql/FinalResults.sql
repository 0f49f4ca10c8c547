CREATE TABLE ai_agent_kb_profile.profile_results
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/predict-profile/tables/profile_results/${run_id}/'
) AS
-- Exactly one row per distinct source id: the model's prediction, or the default with the reason.
SELECT
  s.id,
  coalesce(p.predicted_age, 38) AS predicted_age,
  p.lower_bound_age,
  p.upper_bound_age,
  coalesce(p.confidence_score_age, 0.0) AS confidence_score_age,
  coalesce(p.predicted_homeowner, false) AS predicted_homeowner,
  p.probability_homeowner,
  CASE
    WHEN p.id IS NOT NULL THEN 'model'
    WHEN NOT s.parse_ok THEN 'default_unparseable'
    ELSE 'default_unscored'
  END AS prediction_source,
  s.age AS known_age,
  s.homeowner AS known_homeowner,
  p.model_name_age,
  p.model_version_age,
  p.model_name_homeowner,
  p.model_version_homeowner,
  '${run_id}' AS run_id
FROM ai_agent_kb_profile.profile_parsed_2025q3 s
LEFT JOIN ai_agent_kb_profile.profile_predictions p ON p.id = s.id

-- Prediction workers write one Parquet file per batch under batch_id=N/. Partition projection
-- finds them without MSCK REPAIR or Glue partition calls.
CREATE EXTERNAL TABLE ai_agent_kb_profile.profile_predictions (
  id string,
  predicted_age double,
  lower_bound_age double,
  upper_bound_age double,
  confidence_score_age double,
  model_name_age string,
  model_version_age string,
  predicted_homeowner boolean,
  probability_homeowner double,
  model_name_homeowner string,
  model_version_homeowner string,
  run_id string
)
PARTITIONED BY (batch_id int)
STORED AS PARQUET
LOCATION 's3://stepkit-example-bucket/predict-profile/tables/profile_predictions/${run_id}/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.batch_id.type' = 'integer',
  'projection.batch_id.range' = '0,897',
  'storage.location.template' = 's3://stepkit-example-bucket/predict-profile/tables/profile_predictions/${run_id}/batch_id=${batch_id}/'
)

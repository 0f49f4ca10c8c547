-- Prediction workers write one Parquet file per batch under batch_id=N/. Partition projection
-- finds them without MSCK REPAIR or Glue partition calls.
CREATE EXTERNAL TABLE ai_agent_kb_rescore_age.rescore_age_predictions (
  id string,
  predicted_age double,
  lower_bound double,
  upper_bound double,
  confidence_score double,
  model_name string,
  model_version string,
  run_id string
)
PARTITIONED BY (batch_id int)
STORED AS PARQUET
LOCATION 's3://stepkit-example-bucket/rescore-age/tables/rescore_age_predictions/${run_id}/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.batch_id.type' = 'integer',
  'projection.batch_id.range' = '0,897',
  'storage.location.template' = 's3://stepkit-example-bucket/rescore-age/tables/rescore_age_predictions/${run_id}/batch_id=${batch_id}/'
)

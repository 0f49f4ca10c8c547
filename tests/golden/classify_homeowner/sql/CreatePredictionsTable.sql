-- Prediction workers write one Parquet file per batch under batch_id=N/. Partition projection
-- finds them without MSCK REPAIR or Glue partition calls.
CREATE EXTERNAL TABLE ai_agent_kb_homeowner.homeowner_predictions (
  id string,
  predicted_homeowner boolean,
  probability double,
  model_name string,
  model_version string,
  run_id string
)
PARTITIONED BY (batch_id int)
STORED AS PARQUET
LOCATION 's3://stepkit-example-bucket/classify-homeowner/tables/homeowner_predictions/${run_id}/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.batch_id.type' = 'integer',
  'projection.batch_id.range' = '0,199',
  'storage.location.template' = 's3://stepkit-example-bucket/classify-homeowner/tables/homeowner_predictions/${run_id}/batch_id=${batch_id}/'
)

CREATE TABLE ai_agent_kb_predict_income.income_human_qa
WITH (
  format = 'PARQUET',
  write_compression = 'SNAPPY',
  external_location = 's3://stepkit-example-bucket/ml/predict-income/tables/income_human_qa/${run_id}/'
) AS
-- One row per prediction, beside the parsed features and the known target (where there is one).
SELECT
  p.id,
  s.age,
  s.years_since_first_job,
  s.job_tenure_years,
  s.seniority_level,
  s.education_level,
  s.degree_count,
  s.homeowner,
  s.household_size,
  s.num_credit_cards,
  s.credit_history_years,
  s.has_retirement_account,
  s.device_type,

  s.income_usd AS known_income_usd,
  p.predicted_income_usd,
  p.lower_bound,
  p.upper_bound,
  p.confidence_score,
  abs(p.predicted_income_usd - s.income_usd) AS abs_error,
  s.income_usd BETWEEN p.lower_bound AND p.upper_bound AS known_in_interval,
  p.model_name,
  p.model_version,
  p.run_id
FROM ai_agent_kb_predict_income.income_predictions p
JOIN ai_agent_kb_predict_income.income_staging_features s ON s.id = p.id

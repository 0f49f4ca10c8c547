"""The run-alerts Lambda (python3.12): names the stage a run failed at and publishes the alert to SNS."""

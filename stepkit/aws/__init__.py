"""Deploying and operating a compiled pipeline on AWS (CloudFormation, Step Functions, Athena).

`template` is pure (no boto3) so `stepkit compile` can write `template.json` fast; the other
modules import boto3 and are used by the `deploy`, `images`, `status`, `logs`, `runs` and
`results` commands.
"""

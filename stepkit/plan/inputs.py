"""What a plan is for: the row count, the source's size, measured rates and the account's limits.

Without credentials the figures come from the spec, the command line and stated defaults.
With `--aws` (credentials at hand) stepkit reads the account's own: the Fargate vCPU quota
(Service Quotas, L-3032A538), the subnets' free addresses (EC2 DescribeSubnets) and the
source's size (an S3 listing of `source.location`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stepkit.errors import AwsError, StepkitError
from stepkit.plan.coefficients import DEFAULT, Coefficients
from stepkit.plan.model import Inputs

STATIC_VCPU_QUOTA = 6  # AWS's default Fargate On-Demand vCPU quota for a new account
FARGATE_VCPU_QUOTA = ("fargate", "L-3032A538")


def default_inputs(p: Any, coef: Coefficients = DEFAULT) -> Inputs:
    rows = float(p.source.rows or 0)
    return Inputs(rows, "source.rows in the spec", rows * coef.v("json_bytes_per_row"),
                  f"assumed: {coef.v('json_bytes_per_row'):,.0f} bytes a row (json_bytes_per_row)")


def build(p: Any, rows: int | None = None, source_bytes: int | None = None, from_run: Path | None = None,
          vcpu_quota: float | None = None, session: Any = None, coef: Coefficients = DEFAULT) -> Inputs:
    if rows is None and not p.source.rows:
        raise StepkitError("source.rows is unset: pass --rows N (the source's row count)")
    n = float(rows if rows is not None else p.source.rows)
    inputs = Inputs(n, "--rows" if rows is not None else "source.rows in the spec", n * coef.v("json_bytes_per_row"),
                    f"assumed: {coef.v('json_bytes_per_row'):,.0f} bytes a row (json_bytes_per_row); "
                    "pass --source-bytes, or --aws to list the source")
    if source_bytes is not None:
        inputs.source_bytes, inputs.source_bytes_basis = float(source_bytes), "--source-bytes"
    elif session is not None:
        inputs.source_bytes, inputs.source_bytes_basis = source_size(session, p.source.location)
    if from_run is not None:
        from stepkit.plan import throughput

        task_of = {s.name: (s.type, s.task) for s in p.stages if s.type in ("fan_out", "fargate_task")}
        inputs.rates = throughput.rates(from_run, task_of)
    inputs.vcpu_quota = STATIC_VCPU_QUOTA
    if vcpu_quota is not None:
        inputs.vcpu_quota, inputs.quota_basis = vcpu_quota, "--vcpu-quota"
    elif session is not None:
        inputs.vcpu_quota, inputs.quota_basis = fargate_quota(session)
    if session is not None:
        inputs.free_ips, inputs.ips_basis = free_addresses(session, list(p.aws.network.subnets))
    return inputs


def fargate_quota(session: Any) -> tuple[float, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    from stepkit.aws.session import explain

    service, code = FARGATE_VCPU_QUOTA
    sq = session.client("service-quotas")
    try:
        value = sq.raw.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"]
        return float(value), f"the account's quota {code} in {session.region} (Service Quotas)"
    except sq.exceptions.NoSuchResourceException:
        # No applied value: the account has AWS's default for the quota.
        try:
            value = sq.raw.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"]
            return float(value), f"AWS's default for {code} (the account has not changed it)"
        except sq.exceptions.NoSuchResourceException:
            raise AwsError(f"servicequotas:GetServiceQuota: no quota {code} for {service} in {session.region}; "
                           "pass --vcpu-quota N") from None
        except (BotoCoreError, ClientError) as e:
            raise (explain(e, "servicequotas:GetAWSDefaultServiceQuota") or e) from None
    except (BotoCoreError, ClientError) as e:
        raise (explain(e, "servicequotas:GetServiceQuota") or e) from None


def free_addresses(session: Any, subnets: list[str]) -> tuple[int, str]:
    ec2 = session.client("ec2")
    found = ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    total = sum(int(s.get("AvailableIpAddressCount", 0)) for s in found)
    return total, f"AvailableIpAddressCount of {', '.join(s['SubnetId'] for s in found)} (EC2 DescribeSubnets)"


def source_size(session: Any, location: str) -> tuple[float, str]:
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    s3 = session.client("s3")
    total = objects = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            total += int(obj["Size"])
            objects += 1
    if not objects:
        raise StepkitError(f"source.location: nothing under {location}: pass --source-bytes")
    return float(total), f"S3 listing of {location}: {objects:,} objects"

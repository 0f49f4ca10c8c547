"""AWS list prices the plan multiplies by, per region, each with where it comes from.

One dated table. A region missing here is an error, never a guess: add its row (from the
pricing pages named in `source`) rather than borrow another region's.

`checked` says how far each figure was confirmed when the table was written: "confirmed"
figures match a published copy of the AWS page (the pages render their regional tables by
script, so the figures were read from copies that quote them); "unconfirmed" ones are the
regional table as recalled, not seen in any copy: verify them on the page before relying on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from stepkit.errors import StepkitError

READ = "2026-12-02"  # when the figures below were read and checked

FARGATE = "AWS Fargate Pricing (Linux, On-Demand)"
ATHENA = "Amazon Athena pricing (SQL queries, per TB scanned)"
STEP_FUNCTIONS = "AWS Step Functions Pricing (Standard workflows, state transitions)"
LAMBDA = "AWS Lambda Pricing (duration per GB-second, requests)"
S3 = "Amazon S3 Pricing (S3 Standard requests)"
LOGS = "Amazon CloudWatch Pricing (Logs: collect, Standard class)"


@dataclass(frozen=True)
class Price:
    """One unit price in USD."""

    usd: float
    unit: str
    source: str  # the AWS pricing page's title
    checked: str  # "confirmed: ..." or "unconfirmed: ..."

    @property
    def confirmed(self) -> bool:
        return self.checked.startswith("confirmed")


@dataclass(frozen=True)
class RegionPrices:
    region: str
    fargate_vcpu_hour: dict[str, Price]  # by architecture: ARM64, X86_64
    fargate_gb_hour: dict[str, Price]
    fargate_storage_gb_hour: Price  # ephemeral storage above the 20 GB every task gets
    athena_tb: Price  # per TB scanned, rounded up per MB, 10 MB minimum per query; DDL free
    sfn_transition: Price  # per state transition, Standard workflows
    lambda_gb_second: dict[str, Price]  # by architecture: arm64, x86_64
    lambda_request: Price
    s3_put: Price  # PUT, COPY, POST, LIST: per request
    s3_get: Price  # GET, SELECT and the rest: per request
    logs_ingest_gb: Price
    notes: list[str] = field(default_factory=list)

    def all(self) -> dict[str, Price]:
        """Every price by a stable name (for --json and the README's table)."""
        out = {}
        for name in ("fargate_vcpu_hour", "fargate_gb_hour", "lambda_gb_second"):
            for arch, price in getattr(self, name).items():
                out[f"{name}.{arch}"] = price
        for name in ("fargate_storage_gb_hour", "athena_tb", "sfn_transition", "lambda_request", "s3_put",
                     "s3_get", "logs_ingest_gb"):
            out[name] = getattr(self, name)
        return out


_SEEN_US_EAST_1 = "confirmed: us-east-1 figures as quoted from the page by two independent price guides"
_POWER_TUNING = ("confirmed: the same figure in a region-by-region table taken from the AWS Price List API "
                 "(aws-lambda-power-tuning's deployment template), where this region takes the default")
_RECALLED = "unconfirmed: the page's regional table as recalled; no copy of this region's figure was found"
_SAME_AS_USE1 = "unconfirmed: the page lists this region at the us-east-1 figure, as recalled"


def _standard_us(region: str, checked_fargate: str, checked_other: str) -> RegionPrices:
    """us-east-1's figures; us-east-2 and us-west-2 list the same ones."""
    return RegionPrices(
        region=region,
        fargate_vcpu_hour={"ARM64": Price(0.03238, "vCPU-hour", FARGATE, checked_fargate),
                           "X86_64": Price(0.04048, "vCPU-hour", FARGATE, checked_fargate)},
        fargate_gb_hour={"ARM64": Price(0.00356, "GB-hour", FARGATE, checked_fargate),
                         "X86_64": Price(0.004445, "GB-hour", FARGATE, checked_fargate)},
        fargate_storage_gb_hour=Price(0.000111, "GB-hour above 20 GB", FARGATE, checked_fargate),
        athena_tb=Price(5.00, "TB scanned", ATHENA, checked_other),
        sfn_transition=Price(0.000025, "state transition", STEP_FUNCTIONS, _POWER_TUNING),
        lambda_gb_second={"arm64": Price(0.0000133334, "GB-second", LAMBDA, _POWER_TUNING),
                          "x86_64": Price(0.0000166667, "GB-second", LAMBDA, _POWER_TUNING)},
        lambda_request=Price(0.20 / 1e6, "request", LAMBDA, checked_other),
        s3_put=Price(0.005 / 1000, "request", S3, checked_other),
        s3_get=Price(0.0004 / 1000, "request", S3, checked_other),
        logs_ingest_gb=Price(0.50, "GB ingested", LOGS, checked_other),
    )


PRICES: dict[str, RegionPrices] = {
    "us-east-1": _standard_us("us-east-1", _SEEN_US_EAST_1, _SEEN_US_EAST_1),
    "us-east-2": _standard_us("us-east-2", _SAME_AS_USE1, _SAME_AS_USE1),
    "us-west-2": _standard_us("us-west-2", _SAME_AS_USE1, _SAME_AS_USE1),
    "eu-west-1": _standard_us("eu-west-1", _SAME_AS_USE1, _SAME_AS_USE1),
    "eu-central-1": RegionPrices(
        region="eu-central-1",
        fargate_vcpu_hour={"ARM64": Price(0.03725, "vCPU-hour", FARGATE, _RECALLED),
                           "X86_64": Price(0.04656, "vCPU-hour", FARGATE, _RECALLED)},
        fargate_gb_hour={"ARM64": Price(0.00409, "GB-hour", FARGATE, _RECALLED),
                         "X86_64": Price(0.00511, "GB-hour", FARGATE, _RECALLED)},
        fargate_storage_gb_hour=Price(0.000122, "GB-hour above 20 GB", FARGATE, _RECALLED),
        athena_tb=Price(5.00, "TB scanned", ATHENA, _SAME_AS_USE1),
        sfn_transition=Price(0.000025, "state transition", STEP_FUNCTIONS, _POWER_TUNING),
        lambda_gb_second={"arm64": Price(0.0000133334, "GB-second", LAMBDA, _POWER_TUNING),
                          "x86_64": Price(0.0000166667, "GB-second", LAMBDA, _POWER_TUNING)},
        lambda_request=Price(0.20 / 1e6, "request", LAMBDA, _SAME_AS_USE1),
        s3_put=Price(0.0054 / 1000, "request", S3, _RECALLED),
        s3_get=Price(0.00043 / 1000, "request", S3,
                     "confirmed: a Frankfurt S3 price guide gives $0.00043 per 1,000 as the cheapest request price"),
        logs_ingest_gb=Price(0.63, "GB ingested", LOGS, _RECALLED),
    ),
}


def for_region(region: str) -> RegionPrices:
    if region in PRICES:
        return PRICES[region]
    if "${" in region:
        raise StepkitError(f"aws.region: {region!r} is unset: pass --var AWS_REGION=... or --env-file")
    raise StepkitError(f"aws.region: no prices for {region} in stepkit's price table (read {READ}; it has "
                       f"{', '.join(sorted(PRICES))}): add the region's row to stepkit/plan/prices.py")

"""Retry: the first retrier whose ErrorEquals matches decides; each retrier counts its own attempts.

AWS's rules (developer guide, "Error handling"): IntervalSeconds (default 1) before the first retry,
multiplied by BackoffRate (default 2.0) for each further one, capped by MaxDelaySeconds; MaxAttempts
(default 3) retries at most, 0 never; JitterStrategy FULL waits a random time between 0 and that delay.
When the matching retrier has no attempts left the error goes to Catch: a later retrier that would also
match is not consulted.
"""
from __future__ import annotations

import random

from .errors import first_match


class Retries:
    def __init__(self, retriers: list[dict] | None):
        self.retriers = retriers or []
        self.counts = [0] * len(self.retriers)
        self.total = 0

    def next_delay(self, error: str) -> float | None:
        """AWS's delay before the next retry for `error`, or None when it is not retried."""
        index = first_match(self.retriers, error)
        if index is None:
            return None
        rule, count = self.retriers[index], self.counts[index]
        if count >= rule.get("MaxAttempts", 3):
            return None
        delay = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** count
        if "MaxDelaySeconds" in rule:
            delay = min(delay, rule["MaxDelaySeconds"])
        if rule.get("JitterStrategy", "NONE") == "FULL":
            delay = random.uniform(0, delay)
        self.counts[index] += 1
        self.total += 1
        return delay

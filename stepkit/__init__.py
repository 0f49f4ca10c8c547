"""stepkit: reusable AWS Step Functions building blocks driven by declarative YAML."""

__version__ = "0.1.0"

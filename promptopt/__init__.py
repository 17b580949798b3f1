"""promptopt: find better prompts for large language models."""

__version__ = "0.1.0"

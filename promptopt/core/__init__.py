"""Errors, file and path helpers, the strategy/backend registry and the shared value types."""

"""Model backends behind one batch-first protocol, plus caching and metering wrappers."""

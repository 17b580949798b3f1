"""Model backends behind one batch-first protocol, the one stack builder (stack.py:
backend <- cache <- meter <- journal), caching, metering and pricing."""

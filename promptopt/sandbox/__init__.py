"""Running model-written code, and nothing else."""

"""Tasks (YAML) with their scorers, data-set readers and splits, code tasks."""

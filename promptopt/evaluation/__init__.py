"""The Evaluator (the only path to a score), prompt rendering, ensembles, statistics,
the CI gate and its reports."""

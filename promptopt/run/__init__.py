"""One search end to end, compare, eval runs, the dry run, the run store and exports."""

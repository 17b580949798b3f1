"""Search strategies: each proposes prompts and asks the one evaluator for their scores;
what only one strategy uses sits next to it (instructzero_bo.py, rlprompt_policy.py)."""

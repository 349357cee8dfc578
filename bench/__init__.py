"""Benchmarks of the recsys core: tuning, quality, speed (run as ``python -m bench.<name>``)."""

"""``make bench``: speed benchmarks, one module per section, driven by ``bench/run.py``."""

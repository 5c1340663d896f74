"""Benchmarks users run to check their host (``python -m quantavirt bench ...``)."""

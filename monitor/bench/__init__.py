"""Benchmarks shipped with the CLI (``finpulse bench events``): pure scoring over replayed data."""

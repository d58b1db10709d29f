"""A real Prometheus for the test tier, built from Go modules (see _build.py)."""

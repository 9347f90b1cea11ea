"""Benchmarks of the gateway against nginx and HAProxy (`scripts/bench`, benchmarks/README.md)."""

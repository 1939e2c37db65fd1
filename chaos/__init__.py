"""The chaos harness: `python -m chaos` (make chaos). See chaos/harness.py."""

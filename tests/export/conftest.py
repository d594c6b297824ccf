"""Export fixtures: `tiny_model` and `tiny_run` live in tests/conftest.py (the CLI tests use them too)."""

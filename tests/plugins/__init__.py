"""pytest plugins that start the real test infrastructure (see ``tests/conftest.py``)."""

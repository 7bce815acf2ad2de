"""Qt-free engine: models, encoders, library, index, ingest and search.

Nothing under this package may import PySide6 (tests/core/test_architecture.py enforces it), so
the CLI, the tests and the GUI all drive exactly the same code.
"""

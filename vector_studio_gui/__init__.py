"""Vector Studio: local visual semantic search over chart images."""

__version__ = "0.1.0"
APP_NAME = "vector_studio"

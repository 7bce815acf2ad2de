"""Vector Studio: local visual semantic search over chart images."""

import os

# ONNX Runtime 1.32 records a device id under ~/.cache (and may report usage) on import unless
# telemetry is off; a local-only tool must not do either. Users can still opt in explicitly.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
APP_NAME = "vector_studio"

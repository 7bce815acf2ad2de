"""The desktop GUI: a thin PySide6 layer over ``vector_studio_gui.core``."""

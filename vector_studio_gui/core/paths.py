"""Where models, libraries and settings live by default.

Every location can be overridden (CLI option or environment variable) so tests and portable
installs never touch the user's real folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from vector_studio_gui import APP_NAME

MODELS_DIR_ENV = "VECTOR_STUDIO_MODELS_DIR"
LIBRARY_DIR_ENV = "VECTOR_STUDIO_LIBRARY"
CONFIG_FILE_ENV = "VECTOR_STUDIO_CONFIG"


def default_models_dir() -> Path:
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "models"


def default_library_dir() -> Path:
    env = os.environ.get(LIBRARY_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "library"


def default_config_file() -> Path:
    env = os.environ.get(CONFIG_FILE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.json"


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))

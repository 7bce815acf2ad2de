"""`python -m vector_studio_gui` behaves exactly like the `vector-studio` command."""

import sys

from vector_studio_gui.cli import main

if __name__ == "__main__":
    sys.exit(main())

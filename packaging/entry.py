"""Entry point of the frozen app (PyInstaller runs this as ``__main__``).

It mirrors ``assistant/__main__.py`` but lives outside the package so the analysis imports
``assistant`` from the build venv's site-packages (with ``models.toml`` inside it), never from the
source tree.
"""

import multiprocessing

from assistant.cli import main

if __name__ == "__main__":
    # A frozen app has no interpreter to re-exec for "spawn" workers; this makes the binary play that role.
    multiprocessing.freeze_support()
    main()

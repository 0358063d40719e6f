"""Unit tests: the domain in-process. No model file is loaded, no server runs and no Textual app starts; a few
tests run the CLI once to check a one-line error, or a bare interpreter to check what an import pulls in."""

"""``python -m assistant`` (and the frozen binary's entry point)."""

from assistant.cli import main

if __name__ == "__main__":
    main()

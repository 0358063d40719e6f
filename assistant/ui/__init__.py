"""The Textual terminal app: the only package that imports textual (the domain stays headless)."""

"""The screens pushed over the chat (first run, model picker, benchmarks, dialogs); none imports ``ui.app``."""

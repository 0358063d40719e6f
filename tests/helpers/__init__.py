"""Helpers the tests share: ``pull`` (the CLI in a subprocess, the real SmolLM2 file, catalogs), ``speech``
(strict SRT/WebVTT parsers, WAV writing, clip alignment), ``ui`` (the scripted chat engine, an async
``wait_until``) and ``hf_server`` (the local stand-in for the Hugging Face hub; also run as a script).

Fixtures stay in ``tests/conftest.py``; what lives here is imported by name (``from helpers.ui import ...``).
"""

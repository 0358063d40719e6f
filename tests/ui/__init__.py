"""UI tests: Textual apps and widgets through ``App.run_test()`` and the Pilot, and SVG snapshots. The chat
engine is the scripted fake (``helpers.ui.ScriptedEngine``); the benchmark screen's re-run drives the real Whisper
starter in its worker (marked slow)."""

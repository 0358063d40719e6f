"""Integration tests: the real starter models through real llama.cpp and faster-whisper, the real CLI in
subprocesses, the local stand-in hub, audio tools. ``reliability/`` holds the hostile-input and failure cases,
each driving the real CLI the same way."""

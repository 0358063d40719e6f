"""An offline, on-device assistant: chat, dictation, and a model manager for small GGUF models."""

import os as _os

__version__ = "0.1.0"

# Offline by default. huggingface-hub reads these when it is first imported (faster-whisper imports it
# too), and otherwise makes calls nobody asked for: telemetry, implicit-token lookups. Only an explicit
# pull lifts HF_HUB_OFFLINE, for its own call (see hub.network_allowed).
for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("DO_NOT_TRACK", "1"),
    # onnxruntime (faster-whisper's VAD) ships Microsoft 1DS telemetry on Linux too: a thread of its native code
    # resolves mobile.events.data.microsoft.com (tests/integration/test_offline.py caught it with strace). Read at import.
    ("ORT_DISABLE_TELEMETRY", "1"),
):
    _os.environ.setdefault(_key, _value)

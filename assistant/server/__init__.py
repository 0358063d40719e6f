"""``assistant serve``: the installed models behind an OpenAI- and Ollama-compatible HTTP API.

A front like the CLI and the TUI: it only calls the domain (``engine``, ``store``, ``speech``, ``tts``), and every
llama.cpp call still runs on the one llama thread (``batch`` and ``generation`` hand work there and stream results
back to the event loop). Nothing here imports textual, and nothing opens an outbound connection.

Modules: ``app`` (the app factory and its lifespan), ``openai_routes``, ``ollama_routes``, ``audio_routes``,
``schemas`` (request bodies), ``batch`` (continuous batching: several replies in one decode), ``generation``
(a request's reply on the llama thread, one at a time), ``pool`` (models loaded on demand), ``guards`` (API key, body size, access log, request slots), ``errors`` (OpenAI-style error bodies).
"""

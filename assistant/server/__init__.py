"""``assistant serve``: the installed models behind an OpenAI- and Ollama-compatible HTTP API.

A front like the CLI and the TUI: it only calls the domain (``engine``, ``store``, ``speech``, ``tts``), and every
llama.cpp call still runs on the one llama thread (``generation`` hands work there and streams results back to
the event loop). Nothing here imports textual, and nothing opens an outbound connection.

Modules: ``app`` (the app factory and its lifespan), ``openai_routes``, ``ollama_routes``, ``audio_routes``,
``schemas`` (request bodies), ``generation`` (a request's reply on the llama thread), ``pool`` (models loaded
on demand), ``guards`` (API key, body size, access log, request slots), ``errors`` (OpenAI-style error bodies).
"""

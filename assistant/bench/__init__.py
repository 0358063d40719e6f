"""Benchmarks: quantized variants side by side (speed, memory, quality, task accuracy, one PER score).

``llm.run`` / ``speech.run`` measure each variant in its own child process (``worker.py``) and return a
``results.Run``; ``results.save`` stores it with its machine fingerprint; ``report`` and ``plot`` render
stored runs. The score is defined in ``per.py``. Nothing here is imported by ``assistant --help``.
"""

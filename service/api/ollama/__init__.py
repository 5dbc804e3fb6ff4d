"""The Ollama API (``/api/...`` and ``/``): wire models, conversion, routes."""

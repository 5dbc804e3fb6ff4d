"""LM Studio's SDK WebSocket API (``/llm``, ``/system``): the model listing Roo Code uses."""

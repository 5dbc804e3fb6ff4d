"""llama.cpp server's own API (``/infill``), as llama.vim and llama.vscode call it."""

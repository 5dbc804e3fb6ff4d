"""Anthropic's Messages API (``/v1/messages``), as Claude Code and Anthropic's SDKs speak it."""

"""The OpenAI Responses API (/v1/responses): Codex CLI and the openai SDK's Responses client."""

"""The Helios code-completion API (seed 001): wire models, prompting, suggestions, routes."""

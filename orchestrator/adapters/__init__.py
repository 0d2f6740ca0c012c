"""Model adapters: the builtin offline analyser and an OpenAI-compatible client."""

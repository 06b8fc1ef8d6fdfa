"""Model endpoints: the OpenAI-compatible HTTP client, the embedded llama.cpp server, retries, limits, breaker."""

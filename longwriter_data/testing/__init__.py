"""A loopback OpenAI-compatible fake server for tests, benchmarks and dry runs: see testing/fake_server.py."""

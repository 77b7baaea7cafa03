"""The /v1 hot path: authenticate, limit, route, call the provider, relay, record usage."""

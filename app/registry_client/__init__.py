"""HTTP client for the registry protocol: one session, timeouts, retries, tus uploads."""

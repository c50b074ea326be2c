"""Reference registry server for the Contributor Desk protocol (FastAPI)."""

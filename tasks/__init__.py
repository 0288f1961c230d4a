"""Prefect tasks: thin wrappers over `homelab`, with the retries, names and states the UI shows."""

__all__: list[str] = []

"""Prefect flows: when and in what order the `homelab` work runs (deployments: prefect.yaml)."""

__all__: list[str] = []

"""homelab: keep a home AI inference cluster healthy. The domain core; no Prefect here."""

__all__: list[str] = []

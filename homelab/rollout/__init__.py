"""Rollout sequences, each written once: a node's whole rollout (`node`), its Docker containers
(`containers`), its Ollama models (`ollama`), and the preview from the cluster file alone (`preview`)."""

__all__: list[str] = []

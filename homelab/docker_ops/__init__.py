"""Model rollout with Docker: named volumes, verified copy-in, container specs, serial start with a health gate, rollback.

Layers, as in pyinfra: `connect` is the connector (one engine per node, the error boundary);
facts (`volume_files`, `container_state`, the sources' hashes) only look; `plan` is pure and
turns the desired state and the facts into steps, each with its reason; `rollout.apply`
performs the steps. Nothing here imports Prefect: `tasks/rollout.py` and `flows/rollout.py`
compose these functions.
"""

__all__: list[str] = []

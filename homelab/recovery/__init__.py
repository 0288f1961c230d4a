"""Node recovery: decisions (`plan`), the actions that carry them out (`actions`), waking a
machine (`wake`), and what a Windows Docker Desktop node needs (`windows`)."""

__all__: list[str] = []

"""Node recovery: the loop (`loop`) and how its steps run (`runner`), decisions (`plan`), the
actions that carry them out (`actions`), the incident into the history (`record`), waking a
machine (`wake`), and what a Windows Docker Desktop node needs (`windows`)."""

__all__: list[str] = []

"""Health: one endpoint's probe (`probe`, over the bounded GETs of `http`), and the sweep that
classifies endpoints, tiers and the cluster (`sweep`)."""

__all__: list[str] = []

"""Expert routing: classify a request, then pick the best healthy expert for its category."""

__all__: list[str] = []

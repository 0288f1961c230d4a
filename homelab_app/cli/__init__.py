"""The `homelab` command: core results rendered for people (rich) or scripts (`--json`).

Only this package imports typer and rich. Each command lives in its own module and registers
itself on the shared app when imported; it imports the core when it runs, so `homelab --help`
loads no heavy library (`tests/test_core_boundaries.py`, `benchmarks/startup_bench.py`).
Exit codes: 0 success, 1 the cluster is not healthy (commands that check it) or a system failed,
2 bad input (an invalid cluster file, a bad option), 3 critical. One handler, the app's group in
`common.py`, turns a `HomelabError` into its one-line message and its code (homelab/errors.py).
"""

# In the order `homelab --help` lists them: a newcomer's path through the tool.
from homelab_app.cli import (  # noqa: F401, I001  (each registers its commands)
    demo_cmd,
    stack_cmd,
    inventory_cmd,
    sweep_cmd,
    route_cmd,
    plan_cmd,
    plan_estimate_cmd,
    plan_fit_cmd,
    rollout_cmd,
    recover_cmd,
    node_cmd,
    gateway_cmd,
    report_cmd,
    metrics_cmd,
)
from homelab_app.cli.common import app

__all__ = ["app"]

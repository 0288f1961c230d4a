"""The Prefect stack on this machine: `up` starts (or finds) server, deployments and worker; `down` stops them.

    from homelab_app.stack import StackOptions, up, down

    status = up(StackOptions(workdir=Path("demo"), inventory=Path("demo/cluster.yaml")), progress=print)
    status.ui_url            # http://127.0.0.1:4200/
    down(status.state_dir)   # stops exactly what up started

The server and the worker are `prefect` processes of their own and `prefect deploy` runs in a child;
everything else goes through Prefect's client in this process (`prefect_api`), imported only when called.
"""

from homelab_app.stack.deploy_config import fit_to_inventory, load_deploy_config, node_queue, recover_deployment_name
from homelab_app.stack.prefect_api import DeployedDeployment
from homelab_app.stack.prefect_cli import OFFLINE_ENV
from homelab_app.stack.processes import ProcessRecord
from homelab_app.stack.up import (
    DEFAULT_PORT,
    PROJECT_DIR,
    StackOptions,
    StackStatus,
    StackTimeouts,
    StopReport,
    down,
    up,
)

__all__ = [
    "DEFAULT_PORT",
    "OFFLINE_ENV",
    "PROJECT_DIR",
    "DeployedDeployment",
    "ProcessRecord",
    "StackOptions",
    "StackStatus",
    "StackTimeouts",
    "StopReport",
    "down",
    "fit_to_inventory",
    "load_deploy_config",
    "node_queue",
    "recover_deployment_name",
    "up",
]

"""`python -m homelab_app.demo.wake --state DIR NODE`: the demo nas node's wake command.

A real node's wake command powers the machine on (a smart plug, a BMC); the demo's "machine"
is one llama-server process, so waking it starts that process again. The recover-node flow
runs this command like any other wake command and then waits until the node serves.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from homelab.errors import DemoError
from homelab_app.demo.cluster import wake_server

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Start the demo node's server; exit 1 with the reason when it does not serve."""
    parser = argparse.ArgumentParser(prog="python -m homelab_app.demo.wake", description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, type=Path, help="the demo's state folder")
    parser.add_argument("node")
    args = parser.parse_args(argv)
    try:
        print(wake_server(args.state, args.node), flush=True)
    except DemoError as exc:
        print(f"wake failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

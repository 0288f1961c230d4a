"""`homelab rollout` on a node with models to deploy to Ollama: what that part did, shown."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from homelab.cli.common import err, out
from homelab.ollama_deploy import OllamaRolloutReport

__all__ = ["render_ollama"]

_STYLE = {"done": "green", "failed": "red", "not run": "dim"}


def render_ollama(report: OllamaRolloutReport) -> None:
    """The plan (dry run) or each step with its outcome, then what was left alone and the loads."""
    title = f"Ollama {'rollout plan' if report.dry_run else 'rollout'} on {escape(report.node)}"
    table = Table(title=title, title_justify="left")
    for column in ("step",) if report.dry_run else ("step", "status", "seconds", "detail"):
        table.add_column(column)
    for step in report.plan.steps if report.dry_run else []:
        table.add_row(escape(step.summary()))
    for o in report.outcomes:
        table.add_row(escape(o.summary), f"[{_STYLE[o.status.value]}]{o.status}[/]", f"{o.seconds:g}", escape(o.detail))
    out.print(table if report.plan.steps else f"{title}: nothing to do")
    for reason in report.plan.unchanged:
        out.print(f"  [dim]= {escape(reason)}[/]", highlight=False)
    for line in report.vram:
        out.print(f"  [dim]vram: {escape(line)}[/]", highlight=False)
    for check in report.checks:
        mark = "[green]✓[/]" if check.matches else "[yellow]![/]" if check.loaded else "[red]✗[/]"
        out.print(f"  {mark} {escape(check.summary())}", highlight=False)
    if report.failure:
        err.print(f"[red]✗[/] {escape(report.failure)}", highlight=False, soft_wrap=True)

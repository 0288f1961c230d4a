"""`AppriseURL`: a Prefect notification block for any Apprise URL: email over SMTP, ntfy, Gotify, Telegram, ...

Prefect ships blocks for Slack, Discord, Teams, PagerDuty, a custom webhook and Sendgrid
(prefect/blocks/notifications.py), all built on Apprise, but none that takes an Apprise URL as
it is, so there is none for plain SMTP (`mailto://` / `mailtos://`) or ntfy (`ntfy://`). Prefect's
`AppriseNotificationBlock` is that block, left abstract (notifications.py:101); this is it made
concrete, nothing added: the URL is a `SecretStr` (it holds the SMTP password or the token) and
Apprise sends the message.

The alert automations run in the Prefect server's actions service, which loads the block class
by its slug. It finds this one through the `prefect.collections` entry point of this package
(pyproject.toml), so the server must run where homelab is installed (as `homelab up`'s does).
"""

from __future__ import annotations

from prefect.blocks.notifications import AppriseNotificationBlock

__all__ = ["AppriseURL"]


class AppriseURL(AppriseNotificationBlock):
    """Send notifications to any Apprise URL (https://github.com/caronc/apprise/wiki).

    Examples:
        Email through your own SMTP server (STARTTLS on 587; `mailto://` is plain SMTP):
        ```python
        from blocks import AppriseURL

        AppriseURL(url="mailtos://alerts:PASSWORD@mail.home.lan:587?to=me@home.lan").save("email")
        ```
        ntfy: `ntfys://TOKEN@ntfy.sh/homelab-alerts`.
    """

    _block_type_name = "Apprise URL"
    _block_type_slug = "apprise-url"
    _description = "Send notifications to any Apprise URL: email over SMTP (mailto://), ntfy://, gotify://, ..."

"""The webhooks page: a person's webhook endpoints (create one and see its secret, send a
test event, turn one off or on, rotate its secret, delete it) and each endpoint's delivery
log (every message with its attempts, and a button to send one again).

The server renders the shell with the event types to choose from; the page's script does
everything through ``/v1/webhook-endpoints``.
"""

from __future__ import annotations

from typing import Any

from pipelines.webhooks import outbox
from web.pages import blueprint, person, render


@blueprint.get("/webhooks")
@person
def webhooks_page() -> Any:
    return render("webhooks.html", title="Webhooks", active="webhooks", event_types=outbox.EVENT_TYPES)

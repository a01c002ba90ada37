"""``/docs``: the API reference, for anyone, logged in or not.

The browser renders it from ``/v1/openapi.json`` with Redoc, vendored under
``web/static/vendor/redoc`` and served by faktry itself: the page loads nothing from another
origin. Every operation shows its example request (a curl command, and the JSON body when it
takes one) and its example answer, both from the document (`web.openapi_doc`).

Redoc styles the page with ``<style>`` elements and ``style`` attributes it writes as it
renders, not all of which it can give a nonce, and builds its search index in a worker it
starts from a ``blob:`` URL. The pages' policy (`web.pages.page_headers`) allows neither, so
this page's answer widens it: inline styles in ``style-src`` and ``blob:`` workers. That is
safe here because nothing on the page is written by a person: it is the document faktry
builds from its own code, under the pages' own header. Scripts stay as strict as on every
page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request

from web.pages import render

blueprint = Blueprint("docs", __name__)


@blueprint.get("/docs")
def api_reference() -> Any:
    return render("docs.html", title="API reference", active="docs")


def install(app: Flask) -> None:
    """Serve ``/docs``. Call before `web.pages.page_headers` is registered: Flask runs the
    app's after-request functions last-registered first, so `_widen_policy` then amends the
    policy page_headers has just written."""
    app.register_blueprint(blueprint)
    app.after_request(_widen_policy)


def _widen_policy(response: Any) -> Any:
    policy = response.headers.get("Content-Security-Policy")
    if request.endpoint != "docs.api_reference" or not policy:
        return response
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    widened = [f"{d} 'unsafe-inline'" if d.split()[0] == "style-src" else d for d in directives]
    response.headers["Content-Security-Policy"] = "; ".join([*widened, "worker-src blob:"])
    return response

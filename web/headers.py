"""Headers every answer of the app carries, whatever produced it: a view, an error handler,
a static file, a download, ``/metrics`` or ``/healthz``.

``X-Content-Type-Options: nosniff`` tells browsers to believe the ``Content-Type`` faktry
sends and never guess another from the bytes: a file served as an image is never run as
HTML or script, an error's JSON is never rendered as a page. Downloads a browser would run
are also sent as attachments (`pipelines.files.served_inline`). The pages add their own
(Content-Security-Policy and others, see `web.pages.page_headers`).
"""

from __future__ import annotations

from flask import Flask, Response


def nosniff(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def register(app: Flask) -> None:
    app.after_request(nosniff)

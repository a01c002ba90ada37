"""The JSON API under ``/v1``."""

from flask import Blueprint

blueprint = Blueprint("api", __name__, url_prefix="/v1")

from web.api import account, admin, billing, files, jobs, keys, models, openapi, session, signup  # noqa: E402,F401

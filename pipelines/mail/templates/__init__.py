"""The account mails' words: a subject, a text body and an HTML body per kind.

Each kind has ``<kind>.txt`` and ``<kind>.html`` beside this module, rendered with Jinja2
(the HTML escaped, the text and the subject not); its subject is in `SUBJECTS`. Every template gets
the context its caller passes (links are absolute, built from ``Settings.public_url``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).resolve().parent

SUBJECTS = {
    "verify_email": "Confirm your email address for faktry",
    "password_reset": "Reset your faktry password",
    "signup_attempt": "Someone tried to sign up to faktry with your address",
    "security_notice": "faktry security notice: {{ event }}",
    "policy_change": "faktry's privacy policy changes on {{ effective }}",
    "invitation": "{{ inviter }} invites you to faktry",
}


@cache
def _environment() -> jinja2.Environment:
    # ``.html`` templates are escaped; ``.txt`` ones and the subjects are plain text.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE)),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def render(kind: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """The subject, text body and HTML body of a mail of ``kind``."""
    env = _environment()
    subject = " ".join(env.from_string(SUBJECTS[kind]).render(context).split())
    text = env.get_template(f"{kind}.txt").render(context)
    html = env.get_template(f"{kind}.html").render(context)
    return subject[:300], text, html

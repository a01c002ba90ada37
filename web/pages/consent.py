"""Analytics snippets, loaded in the browser only after the visitor consents.

Operators configure them in ``FAKTRY_ANALYTICS_SNIPPETS`` (see `faktry.config.Settings`):
each is an external script (``src`` with optional ``attrs``) or an inline script body
(``inline``), with the origins it talks to (``origins``, added to the page's
Content-Security-Policy) and the first-party cookies it sets (``cookies``, names or
``prefix*``), which are removed when consent is withdrawn. The page's script injects them
after consent; the server never renders them into the HTML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_ATTR = re.compile(r"^(?:data-[a-z0-9-]+|id|crossorigin|referrerpolicy|integrity|defer)$")
_COOKIE = re.compile(r"^[A-Za-z0-9_.-]+\*?$")


@dataclass(frozen=True)
class Snippet:
    name: str
    src: str | None = None
    inline: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    origins: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "src": self.src,
            "inline": self.inline,
            "attrs": self.attrs,
            "cookies": list(self.cookies),
        }

    def script_origins(self) -> list[str]:
        found = list(self.origins)
        if self.src and self.src.startswith(("http://", "https://")):
            parts = urlsplit(self.src)
            found.append(f"{parts.scheme}://{parts.netloc}")
        return found


def _origin(value: Any, name: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https?://(\*\.)?[A-Za-z0-9.-]+(:\d+)?", value):
        raise ValueError(
            f"analytics snippet {name!r}: origins are like https://example.com or https://*.example.com"
        )
    return value


def parse(raw: str) -> list[Snippet]:
    """The snippets in ``raw`` (JSON); ``ValueError`` says what is wrong with them."""
    if not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"FAKTRY_ANALYTICS_SNIPPETS is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("FAKTRY_ANALYTICS_SNIPPETS must be a JSON list")
    found: list[Snippet] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ValueError("each analytics snippet needs a name")
        name = item["name"].strip()
        unknown = set(item) - {"name", "src", "inline", "attrs", "origins", "cookies"}
        if unknown:
            raise ValueError(f"analytics snippet {name!r}: unknown field {sorted(unknown)[0]!r}")
        src, inline = item.get("src"), item.get("inline")
        if (src is None) == (inline is None):
            raise ValueError(f"analytics snippet {name!r}: give exactly one of src and inline")
        if src is not None and (
            not isinstance(src, str) or not (src.startswith(("https://", "http://")) or src.startswith("/"))
        ):
            raise ValueError(f"analytics snippet {name!r}: src must be an http(s) URL or a path")
        if inline is not None and (not isinstance(inline, str) or "</script" in inline.lower()):
            raise ValueError(f"analytics snippet {name!r}: inline must be a script body")
        attrs = item.get("attrs") or {}
        if not isinstance(attrs, dict) or not all(
            isinstance(k, str) and _ATTR.match(k) and isinstance(v, str) for k, v in attrs.items()
        ):
            raise ValueError(f"analytics snippet {name!r}: attrs may be data-*, id, crossorigin, integrity")
        cookies = item.get("cookies") or []
        if not isinstance(cookies, list) or not all(isinstance(c, str) and _COOKIE.match(c) for c in cookies):
            raise ValueError(f"analytics snippet {name!r}: cookies are names, or prefixes ending in *")
        origins = item.get("origins") or []
        if not isinstance(origins, list):
            raise ValueError(f"analytics snippet {name!r}: origins must be a list")
        found.append(
            Snippet(
                name=name,
                src=src,
                inline=inline,
                attrs=dict(attrs),
                origins=tuple(_origin(o, name) for o in origins),
                cookies=tuple(cookies),
            )
        )
    return found

"""The privacy policy at ``/privacy``, and the page that confirms a deleted account.

The policy is kept as plain text (``web/templates/privacy-policy.txt``) so that whoever runs
faktry can replace it without touching HTML. `parse` reads its shape from the text alone:
the first line is the title, the line after it a summary; ``1. Title`` starts a section and
``1.1 Title`` a subsection; a short line without closing punctuation right before a list is
a subheading too; lines that start with ``- `` are items of a list; every other line is a
paragraph. Whatever the text holds is rendered as text (escaped), never as HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from web.pages import blueprint, render

POLICY = Path(__file__).resolve().parent.parent / "templates" / "privacy-policy.txt"

_SECTION = re.compile(r"^\d+\.\s+\S")
_SUBSECTION = re.compile(r"^\d+\.\d+\s+\S")


@dataclass(frozen=True)
class Block:
    """One piece of the policy: ``kind`` is ``h2``, ``h3``, ``p``, ``meta`` (the date it was
    last updated) or ``ul`` (then ``items`` holds the list's entries)."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    #: For headings: an anchor, so a section can be linked to (``#section-13``).
    anchor: str = ""


@dataclass(frozen=True)
class Policy:
    title: str
    summary: str
    blocks: tuple[Block, ...]


def _anchor(heading: str) -> str:
    number = heading.split()[0].rstrip(".")
    return "section-" + number.replace(".", "-") if number[:1].isdigit() else ""


def _is_subheading(line: str, following: str | None) -> bool:
    return (
        following is not None
        and following.startswith("- ")
        and len(line) <= 60
        and not line.endswith((".", ":", ",", ";"))
    )


def parse(text: str) -> Policy:
    """The policy in ``text``; an empty text is a policy with no title and no blocks."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title = lines[0] if lines else ""
    summary = lines[1] if len(lines) > 1 else ""
    blocks: list[Block] = []
    items: list[str] = []
    body = lines[2:]
    for i, line in enumerate(body):
        if line.startswith("- "):
            items.append(line[2:].strip())
            continue
        if items:
            blocks.append(Block("ul", items=tuple(items)))
            items = []
        following = body[i + 1] if i + 1 < len(body) else None
        if _SUBSECTION.match(line):
            blocks.append(Block("h3", line, anchor=_anchor(line)))
        elif _SECTION.match(line):
            blocks.append(Block("h2", line, anchor=_anchor(line)))
        elif _is_subheading(line, following):
            blocks.append(Block("h3", line))
        elif line.lower().startswith("last updated"):
            blocks.append(Block("meta", line))
        else:
            blocks.append(Block("p", line))
    if items:
        blocks.append(Block("ul", items=tuple(items)))
    return Policy(title=title, summary=summary, blocks=tuple(blocks))


@lru_cache(maxsize=1)
def _policy(mtime_ns: int) -> Policy:
    return parse(POLICY.read_text(encoding="utf-8"))


def policy() -> Policy:
    """The policy as the file says now: read again when the file changes."""
    return _policy(POLICY.stat().st_mtime_ns)


@blueprint.get("/privacy")
def privacy_page() -> Any:
    found = policy()
    return render("privacy.html", title=found.title or "Privacy policy", policy=found, active="privacy")


@blueprint.get("/account/deleted")
def account_deleted() -> Any:
    """Where the profile page goes once the account is gone: what was deleted, what is kept.
    It says nothing about anyone in particular, so it needs no session."""
    return render("deleted.html", title="Your account is deleted")

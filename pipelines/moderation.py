"""Prompt moderation, before any credits are held and outside any database transaction.

A fast local pass scores the prompt per category from weighted terms. A score at or above
``moderation_block`` is refused at once; a score at or above ``moderation_borderline`` is
asked of OpenAI's moderation endpoint, whose verdict decides. When that endpoint cannot be
reached, borderline prompts are refused with ``503 moderation_unavailable`` (nothing held)
and clean prompts pass; with no OpenAI key the local pass decides alone (borderline prompts
pass, and are logged as flagged).

Every flagged or blocked prompt is logged (`ModerationEntry`) with its text, category,
endpoint, model and tenant; the reconciler deletes entries older than 12 months.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from faktry import clock
from faktry.errors import FaktryError, TransientError
from pipelines.models import ModerationEntry

log = logging.getLogger("faktry.moderation")
RETENTION = timedelta(days=365)

#: category -> {term: weight}. A prompt's score in a category is the sum of the weights of
#: the terms it contains, capped at 1. Terms match whole words, case-insensitively.
TERMS: dict[str, dict[str, float]] = {
    "violence": {
        "kill": 0.45, "murder": 0.5, "massacre": 0.6, "behead": 0.9, "beheading": 0.9, "torture": 0.6,
        "gore": 0.5, "bloodbath": 0.6, "shoot": 0.3, "stab": 0.45, "corpse": 0.3, "mutilated": 0.8,
    },
    "self-harm": {"suicide": 0.6, "self-harm": 0.7, "kill myself": 0.95, "cut myself": 0.9, "overdose": 0.5},
    "illicit": {
        "build a bomb": 0.95, "make a bomb": 0.95, "pipe bomb": 0.95, "meth recipe": 0.9,
        "synthesize nerve agent": 1.0, "bomb": 0.35, "explosive": 0.35,
    },
    "sexual/minors": {"child porn": 1.0, "underage nude": 1.0, "csam": 1.0},
    "harassment/threatening": {"i will find you": 0.6, "doxx": 0.7, "dox": 0.5, "threaten": 0.4},
    "hate": {"genocide": 0.5, "ethnic cleansing": 0.8, "subhuman": 0.7},
}  # fmt: skip


def _pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + re.escape(term).replace(r"\ ", r"\s+") + r"(?![\w-])", re.IGNORECASE)


_COMPILED = {cat: [(_pattern(t), w) for t, w in terms.items()] for cat, terms in TERMS.items()}


def local_scores(text: str) -> dict[str, float]:
    return {cat: min(1.0, sum(w for p, w in terms if p.search(text))) for cat, terms in _COMPILED.items()}


class ContentBlocked(FaktryError):
    code = "content_blocked"
    status = 422


class ModerationUnavailable(FaktryError):
    code = "moderation_unavailable"
    status = 503


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str | None
    score: float
    source: str  # local or openai
    #: Over the borderline: logged even when allowed.
    flagged: bool


#: Asks OpenAI's moderation endpoint: returns (flagged, top category, its score); raises
#: TransientError when it cannot be reached.
RemoteCheck = Callable[[str], tuple[bool, str | None, float]]


@dataclass(frozen=True)
class Moderator:
    borderline: float
    block: float
    remote: RemoteCheck | None = None

    def check(self, text: str) -> Verdict:
        scores = local_scores(text)
        category, score = max(scores.items(), key=lambda kv: kv[1]) if scores else (None, 0.0)
        if score >= self.block:
            return Verdict(False, category, score, "local", True)
        if score < self.borderline:
            return Verdict(True, None, score, "local", False)
        if self.remote is None:
            return Verdict(True, category, score, "local", True)
        try:
            flagged, remote_category, remote_score = self.remote(text)
        except TransientError as err:
            raise ModerationUnavailable(
                "the moderation service cannot be reached; try again shortly", details={"category": category}
            ) from err
        if flagged:
            return Verdict(False, remote_category or category, remote_score, "openai", True)
        return Verdict(True, category, score, "openai", True)


def prompt_texts(body: Any) -> list[str]:
    """The texts of a job request that a model will read as instructions."""
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return []
    data = body["input"]
    return [
        str(data[k]) for k in ("prompt", "text", "lyrics", "negative_prompt") if isinstance(data.get(k), str)
    ]


def screen(moderator: Moderator, texts: list[str], *, record: Callable[[Verdict, str], None]) -> None:
    """Check each text; log flagged and blocked ones with ``record``; raise if one is blocked."""
    for text in texts:
        verdict = moderator.check(text)
        if verdict.flagged:
            record(verdict, text)
        if not verdict.allowed:
            raise ContentBlocked(
                f"the prompt was blocked by moderation ({verdict.category})",
                details={"category": verdict.category},
            )


def log_entry(
    session: Session, *, tenant_id: str, verdict: Verdict, prompt: str, endpoint: str, model: str | None
) -> None:
    session.add(
        ModerationEntry(
            tenant_id=tenant_id,
            action="flagged" if verdict.allowed else "blocked",
            category=verdict.category or "unknown",
            score=round(verdict.score, 4),
            source=verdict.source,
            endpoint=endpoint,
            model=model,
            prompt=prompt,
        )
    )


def sweep(session: Session) -> int:
    """Delete log entries older than 12 months."""
    result = session.execute(
        delete(ModerationEntry)
        .where(ModerationEntry.at < clock.now() - RETENTION)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)

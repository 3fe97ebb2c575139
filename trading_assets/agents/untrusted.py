"""News text is data, never instructions.

Headlines come from anyone who can get a story syndicated. Before a headline reaches a prompt it is
normalised, length-capped and quoted as a JSON string inside a delimited block the system prompt
tells the model to treat as data; headlines that look like instructions to a model are flagged,
kept out of every score and shown to the model only as flagged data.
"""

from __future__ import annotations

import json
import re
import unicodedata

MAX_HEADLINE_CHARS = 300
MAX_TEXT_CHARS = 1200

# Phrases that address a model or an operator rather than a reader. Matching is on a folded,
# whitespace-collapsed lower-case copy, so zero-width characters and odd spacing do not hide them.
_INJECTION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your)\b"
        r".{0,20}\b(instructions?|prompts?|rules?|guidelines?|context)\b",
        r"\b(system|developer)\s*(prompt|message|instructions?)\b",
        r"\byou are (now|no longer)\b",
        r"\b(act|behave|respond) as\b",
        r"\bnew instructions?\b",
        r"\b(buy|sell|short)\s+\d[\d,]*\s+(shares|contracts|units)\b",
        r"\b(place|submit|execute)\s+(an?\s+)?(market\s+|limit\s+)?(order|trade)s?\b",
        r"\b(assistant|ai|llm|chatgpt|model)\s*[:,]",
        r"</?\s*(system|assistant|user|instructions?|data)\s*>",
        r"\brespond (only )?with\b",
        r"\bjailbreak\b",
    )
)
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def clean(text: object, max_chars: int = MAX_HEADLINE_CHARS) -> str:
    """Printable, single-line, NFKC-normalised text of at most `max_chars` characters."""
    raw = "" if text is None else str(text)
    folded = unicodedata.normalize("NFKC", raw).translate(_ZERO_WIDTH)
    printable = "".join(ch if ch.isprintable() else " " for ch in folded)
    single = re.sub(r"\s+", " ", printable).strip()
    return single if len(single) <= max_chars else single[: max_chars - 1].rstrip() + "\u2026"


def injection_flags(text: object) -> list[str]:
    """The injection patterns a text matches (empty when it reads like news)."""
    probe = clean(text, max_chars=10_000).lower()
    return [p.pattern for p in _INJECTION_PATTERNS if p.search(probe)]


def is_injection(text: object) -> bool:
    return bool(injection_flags(text))


def quote(text: object, max_chars: int = MAX_HEADLINE_CHARS) -> str:
    """The text as a JSON string literal: quotes, backslashes and newlines cannot end the quote."""
    return json.dumps(clean(text, max_chars), ensure_ascii=True)

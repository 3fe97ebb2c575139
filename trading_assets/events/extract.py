"""Headlines -> market events: the pure groundwork of the `market_events` asset (issue 8).

One row per event (EVENT_COLUMNS). The rules backend here is deterministic and transparent; an
LLM backend returns `MarketEvent` (same fields) and goes through the same frame builder.

Tickers (`match_tickers`) are never guessed: a ticker is kept only when it is in the universe
and either the provider tagged the story with it or the text names it:

1. explicit symbols: a cashtag (``$AAPL``) or a symbol inside parentheses (``(NVDA)``,
   ``(GOOGL, GOOG)``); symbols outside the universe are ignored;
2. a bare universe symbol written as a standalone upper-case token (``TSLA Stock``);
3. a company name or alias from the universe, case-sensitively with word boundaries, so the
   capitalised company ("Apple", "Meta") matches and the common word ("apple pie", "meta")
   does not; the legal suffix is dropped from the name ("Apple Inc." -> "Apple"). In an all-caps
   ("shouty") headline, names of 5+ letters match their upper-case form ("APPLE").

Ambiguous short symbols/aliases - at most 2 characters ("HP", "A", "IT") or a common English
word (``AMBIGUOUS_WORDS``: "ALL", "NOW", "ON"...) - match in rule 2/3 only when the symbol (or
the alias's ticker) is in the universe AND it appears as a standalone upper-case token in a
not all-caps headline - and, for a one-letter or word-like symbol, not as the headline's
first word ("A Stock to Buy", "IT Spending Rises"). Rule 1 (cashtag/parentheses)
always matches. So "HP" never becomes HPQ unless the universe lists HPQ with the alias "HP".

Duplicates (`extract_events`): rows of the same story (equal `story_key`) arriving in the same
minute are one event (their sources and news ids merged). A story whose normalised text equals,
or whose word set has Jaccard >= 0.8 with, an earlier event's within 3 days is kept as a row
with `duplicate_of` = that first event's id (lineage stays visible, consumers skip it).

Event type (`classify`): CLASSIFY_RULES is the table - per type its keyword regexes and base
urgency; the first type in its order (M&A, earnings, guidance, analyst rating,
legal/regulatory, product, macro) with a hit wins, else "other" (urgency 2). Urgency = base +
INTENSITY_RULES bonuses (halted/breaking/bankrupt +3; plunge/soar/crash/collapse/tumble +2;
surge/spike/sink/jump/drop/record +1; a move of 10%+ +1; bonus capped at +4), -1 for an
opinion/listicle form (a question, "stocks to buy", "here's why"...), clamped to 1..10.

Relevance (`relevance`): an exclude keyword wins; with include keywords one must hit; no include
list = relevant. DEFAULT_EXCLUDE drops marketing and formats (sponsored, podcast...). Flagged
(instruction-like, `untrusted.is_injection`) headlines stay as rows but are not relevant, with
urgency 1.

Events with no universe ticker are kept (tickers "") only when they are macro (market-wide);
any other ticker-less event is dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from trading_assets.agents.untrusted import MAX_HEADLINE_CHARS, clean, is_injection
from trading_assets.analysts.report import RULES_MODEL
from trading_assets.ingest.news import story_key
from trading_assets.schemas import conform, empty_frame

EventType = Literal[
    "earnings",
    "guidance",
    "m_and_a",
    "analyst_rating",
    "product",
    "legal_regulatory",
    "macro",
    "other",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

EVENT_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # arrival partition (naive NY), the news row's `minute`
    "event_id": "string",  # stable: hash of the story key and first publication instant
    "tickers": "string",  # comma-joined, sorted, every one in the universe; "" = market-wide
    "event_type": "string",  # one of EVENT_TYPES
    "urgency": "int64",  # 1..10
    "relevant": "bool",
    "relevance_reason": "string",
    "headline": "string",  # untrusted.clean()ed, <= MAX_HEADLINE_CHARS
    "news_ids": "string",  # JSON list of the source story ids
    "sources": "string",  # comma-joined publishers
    "duplicate_of": "string",  # "" or the event_id of the first event this repeats
    "published_at": "datetime64[ns]",  # naive NY, earliest copy
    "model": "string",  # RULES_MODEL for the rules backend, else the LLM's model name
    "flagged": "bool",  # the headline reads like instructions to a model
}

DEDUP_JACCARD = 0.8
DEDUP_WINDOW = pd.Timedelta(days=3)

# Relevance: no include list means everything is relevant; these are excluded by default
# because they are marketing or formats, not events.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "sponsored",
    "advertorial",
    "paid content",
    "podcast",
    "webinar",
)


class MarketEvent(BaseModel):
    """One market event; also the structured answer an LLM backend must return."""

    model_config = ConfigDict(extra="forbid")

    minute: datetime
    event_id: str = ""
    tickers: list[str] = Field(default_factory=list, description="universe symbols only")
    event_type: EventType
    urgency: int = Field(ge=1, le=10)
    relevant: bool = True
    relevance_reason: str = ""
    headline: str = Field(max_length=MAX_HEADLINE_CHARS)
    news_ids: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    duplicate_of: str = ""
    published_at: datetime
    model: str = RULES_MODEL
    flagged: bool = False

    def to_row(self) -> dict[str, object]:
        row = self.model_dump()
        row["tickers"] = ",".join(sorted(set(self.tickers)))
        row["news_ids"] = json.dumps(self.news_ids)
        row["sources"] = ",".join(self.sources)
        return row


# --- tickers --------------------------------------------------------------------------------

AMBIGUOUS_WORDS: frozenset[str] = frozenset(
    (
        *("ALL", "ARE", "ANY", "BIG", "CAN", "CAR", "CAT", "DAY", "EAT", "FOR", "FUN", "GO"),
        *("GOOD", "HAS", "HE", "IT", "KEY", "LOVE", "LOW", "MAN", "NEW", "NOW", "ON", "ONE"),
        *("OPEN", "OUT", "PLAY", "REAL", "RUN", "SEE", "SO", "TEN", "TRUE", "TWO", "US"),
        *("WELL", "WIN", "YOU"),
    )
)
_NAME_SUFFIX = re.compile(
    r",?\s+(inc\.?|incorporated|corporation|corp\.?|co\.?|company|ltd\.?|limited|plc|"
    r"holdings?|group|n\.v\.|s\.a\.|ag|se)$",
    re.IGNORECASE,
)
_EXPLICIT = re.compile(r"\$([A-Z][A-Z.\-]{0,5})\b|\(([A-Z][A-Z.\-]{0,5}(?:\s*,\s*[A-Z.\-]+)*)\)")
_LEADING = " \"'\u2018\u201c([-:"
_UPPER_TOKEN = re.compile(r"(?<![\w$&.\-])[A-Z][A-Z0-9.\-]*(?![\w&\-])")


def _ambiguous(symbol: str) -> bool:
    return len(symbol) <= 2 or symbol in AMBIGUOUS_WORDS


def _core_name(name: str) -> str:
    core = name.strip()
    while True:
        stripped = _NAME_SUFFIX.sub("", core).strip().rstrip(",")
        if stripped == core:
            return core
        core = stripped


@dataclass(frozen=True)
class _Universe:
    symbols: frozenset[str]
    names: tuple[tuple[re.Pattern[str], str, str], ...]  # (pattern, name, ticker)
    short_aliases: dict[str, frozenset[str]]  # ambiguous all-caps alias -> tickers


_UNIVERSE_CACHE: dict[tuple[tuple[str, ...], ...], _Universe] = {}


def _universe(universe: pd.DataFrame) -> _Universe:
    cols = [c for c in ("ticker", "name", "aliases") if c in universe.columns]
    rows = tuple(
        tuple("" if pd.isna(v) else str(v) for v in r)
        for r in universe[cols].itertuples(index=False)
    )
    key = (tuple(cols), *rows)
    cached = _UNIVERSE_CACHE.get(key)
    if cached is not None:
        return cached
    names: list[tuple[re.Pattern[str], str, str]] = []
    short: dict[str, set[str]] = {}
    for values in rows:
        record = dict(zip(cols, values, strict=True))
        ticker = record["ticker"].strip().upper()
        candidates = {_core_name(record.get("name", "")), record.get("name", "").strip()}
        candidates |= {a.strip() for a in record.get("aliases", "").split(";")}
        for cand in sorted(c for c in candidates if c):
            if cand.isupper() and _ambiguous(cand):
                short.setdefault(cand, set()).add(ticker)
                continue
            pattern = re.compile(r"(?<![\w&])" + re.escape(cand) + r"(?![\w&])")
            names.append((pattern, cand, ticker))
    built = _Universe(
        symbols=frozenset(r[0].strip().upper() for r in rows),
        names=tuple(names),
        short_aliases={k: frozenset(v) for k, v in short.items()},
    )
    if len(_UNIVERSE_CACHE) > 32:
        _UNIVERSE_CACHE.clear()
    _UNIVERSE_CACHE[key] = built
    return built


def match_tickers(
    headline: str, universe: pd.DataFrame, provider_tickers: Iterable[str] = ()
) -> list[str]:
    """Universe tickers a headline is about (sorted): the provider's universe tickers united
    with the text matches described in the module docstring."""
    uni = _universe(universe)
    text = clean(headline, max_chars=10_000)
    found = {t.strip().upper() for t in provider_tickers if t and t.strip()} & uni.symbols
    for cash, paren in _EXPLICIT.findall(text):
        for sym in (cash, *paren.split(",")):
            sym = sym.strip()
            if sym in uni.symbols:
                found.add(sym)
    shouty = not any(ch.islower() for ch in text)
    for token in _UPPER_TOKEN.finditer(text):
        sym = token.group(0).rstrip(".")
        if sym not in uni.symbols and sym not in uni.short_aliases:
            continue
        ambiguous = _ambiguous(sym)
        # A word-like symbol ("A", "IT", "ALL") opening a headline is just its first word.
        word_like = len(sym) == 1 or sym in AMBIGUOUS_WORDS
        first_word = not text[: token.start()].strip(_LEADING)
        if ambiguous and (shouty or (word_like and first_word)):
            continue
        if sym in uni.symbols:
            found.add(sym)
        found |= uni.short_aliases.get(sym, frozenset())
    upper = text.upper() if shouty else ""
    for pattern, name, ticker in uni.names:
        if pattern.search(text) or (
            shouty
            and len(name) >= 5
            and re.search(r"(?<![\w&])" + re.escape(name.upper()) + r"(?![\w&])", upper)
        ):
            found.add(ticker)
    return sorted(found)


# --- classification -------------------------------------------------------------------------

# Keyword rules per type, in precedence order: the first type with a hit wins. Patterns are
# regexes on the cleaned headline; (?i) ones are case-insensitive, the others (acronyms such as
# SEC, EPS, Fed) are case-sensitive so "fed up" or "sec" do not match.
_I = "(?i)"
CLASSIFY_RULES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    # (event_type, base urgency, patterns)
    (
        "m_and_a",
        7,
        (
            _I + r"\b(acquir(e|es|ed|ing)|acquisition)\b",
            _I + r"\bmerg(er|e|es|ing)\b",
            _I + r"\bbuyout\b",
            _I + r"\btakeover\b",
            _I + r"\bdeal to buy\b",
            _I + r"\b(tender|buyout|takeover|\$[\d.]+/share) offer\b",
            _I + r"\bto buy\b.{0,40}\bfor \$[\d.]+ ?(billion|million|bn|b|m)\b",
        ),
    ),
    (
        "earnings",
        6,
        (
            _I + r"\bearnings\b",
            r"\bEPS\b",
            _I + r"\bquarterly (results|profit|revenue|sales)\b",
            _I
            + r"\b(q[1-4]|first|second|third|fourth)[- ]quarter (results|profit|revenue|sales)\b",
            _I + r"\b(beats|misses|tops|topped|missed|beat) (estimates|expectations|forecasts?)\b",
            _I + r"\$[\d.]+ billion quarter\b",
            _I + r"\b(profit|revenue|sales) (jumps|falls|rises|drops|surges|slumps)\b",
        ),
    ),
    (
        "guidance",
        6,
        (
            _I + r"\bguidance\b",
            _I + r"\boutlook\b",
            _I
            + r"\b(raises|cuts|lowers|boosts|trims|reaffirms) .{0,30}\b(forecast|view|target)s?\b",
            _I + r"\b(revenue|sales|profit|earnings) forecast\b",
            _I + r"\bforecasts?\b",
        ),
    ),
    (
        "analyst_rating",
        4,
        (
            _I + r"\bupgrade(s|d)?\b",
            _I + r"\bdowngrade(s|d)?\b",
            _I + r"\bprice targets?\b",
            r"\bPTs?\b",
            _I + r"\binitiates? coverage\b",
            _I + r"\b(rating|overweight|underweight|outperform|underperform)\b",
            _I + r"\b(stays?|turns?|remains?) (bullish|bearish)\b",
            _I + r"\bsours? on\b",
        ),
    ),
    (
        "legal_regulatory",
        5,
        (
            _I + r"\b(lawsuit|sues|sued|suing|litigation|class action)\b",
            r"\b(SEC|FTC|DOJ|FDA|FCC|EU Commission)\b",
            _I + r"\bantitrust\b",
            _I + r"\b(probe|investigation|subpoena|indict(ed|ment)?|charges|charged|arrest(ed)?)\b",
            _I + r"\b(fine|fined|penalty|settlement|settles)\b",
            _I + r"\b(ban|bans|banned|sanction(s|ed)?)\b",
            _I + r"\b(court|judge|ruling|verdict)\b",
            _I + r"\b(regulator|regulators|regulatory|legislation|scrutiny|smuggl\w*)\b",
            _I + r"\baccusations?\b",
            _I + r"\bapprov(al|als|es|ed)\b",
        ),
    ),
    (
        "product",
        3,
        (
            _I + r"\blaunch(es|ed|ing)?\b",
            _I + r"\bunveil(s|ed|ing)?\b",
            _I + r"\b(introduces?|rolls? out|debuts?)\b",
            _I + r"\bchips?\b",
            _I + r"\bmodels?\b",
            _I + r"(?<!data )\breleases?\b",
            _I + r"\b(new|paid) (feature|product|phone|device|service|ads)\b",
            _I + r"\b(robotaxi|smartphone|iphone|copilot|gemini|fsd)\b",
        ),
    ),
    (
        "macro",
        4,
        (
            r"\b(Fed|FOMC|Federal Reserve|Powell|Treasury|Treasuries)\b",
            _I + r"\b(interest )?rates?\b(?! (of|on) )",
            _I + r"\b(inflation|CPI|PPI|payrolls|jobs report|unemployment|GDP|recession)\b",
            _I + r"\btariffs?\b",
            _I + r"\b(yields?|oil|brent|crude|opec)\b",
            r"\b(S&P 500|S&P|Nasdaq|Dow Jones|Dow|VIX|Russell 2000)\b",
            _I + r"\b(war|ceasefire|geopolitic\w*|economic data)\b",
            _I + r"\b(wall street|equities|equity futures|stock market|sector update)\b",
            _I + r"\bstocks (fall|rise|tumble|rally|sink|slide|slump)\b",
        ),
    ),
)
_COMPILED_RULES = tuple(
    (etype, base, tuple(re.compile(p) for p in pats)) for etype, base, pats in CLASSIFY_RULES
)
OTHER_URGENCY = 2

# Intensity: each hit adds its bonus (summed, at most +4), opinion/listicle forms subtract 1.
INTENSITY_RULES: tuple[tuple[str, int], ...] = (
    (_I + r"\b(halted|halts|trading halt|breaking|bankrupt\w*|chapter 11)\b", 3),
    (_I + r"\b(plunge[sd]?|soar(s|ed)?|crash(es|ed)?|collapse[sd]?|implosion|tumble[sd]?)\b", 2),
    (_I + r"\b(surge[sd]?|spikes?|rips|sinks|slump(s|ed)?|jumps?|drops?|record)\b", 1),
    (r"\b([1-9]\d|\d{3,})(\.\d+)?%", 1),  # a move of 10% or more
)
_COMPILED_INTENSITY = tuple((re.compile(p), bonus) for p, bonus in INTENSITY_RULES)
_OPINION = re.compile(
    r"(?i)(\?\s*$|\bshould you\b|\bstocks? to (buy|consider|research)\b|\bbest\b.{0,30}\bstocks?\b"
    r"|\bwhat you need to know\b|\bhere'?s why\b|\bi'?d buy\b)"
)


def classify(headline: str) -> tuple[str, int, list[str]]:
    """(event_type, urgency 1..10, the keywords that decided) by the rules above."""
    text = clean(headline, max_chars=10_000).replace("\u2019", "'")
    event_type, base, hits = "other", OTHER_URGENCY, []
    for etype, etype_base, patterns in _COMPILED_RULES:
        found = [m.group(0) for p in patterns if (m := p.search(text))]
        if found:
            event_type, base, hits = etype, etype_base, found
            break
    bonus = 0
    for pattern, extra in _COMPILED_INTENSITY:
        if m := pattern.search(text):
            bonus += extra
            hits.append(m.group(0))
    bonus = min(bonus, 4) - (1 if _OPINION.search(text) else 0)
    return event_type, max(1, min(10, base + bonus)), hits


# --- relevance ------------------------------------------------------------------------------


def _phrase(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(word.strip()) + r"(?!\w)", re.IGNORECASE)


def relevance(
    headline: str, include: Sequence[str] = (), exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> tuple[bool, str]:
    """Exclude wins; with include keywords, at least one must appear. Keywords are phrases
    matched case-insensitively on word boundaries."""
    text = clean(headline, max_chars=10_000)
    for word in exclude:
        if word.strip() and _phrase(word).search(text):
            return False, f"excluded: {word.strip()}"
    words = [w.strip() for w in include if w.strip()]
    if not words:
        return True, "no include list"
    for word in words:
        if _phrase(word).search(text):
            return True, f"included: {word}"
    return False, "no include keyword"


# --- events ---------------------------------------------------------------------------------


def event_id(key: str, published_at: pd.Timestamp) -> str:
    return hashlib.sha1(
        f"event\n{key}\n{pd.Timestamp(published_at).isoformat()}".encode()
    ).hexdigest()[:16]


def _words(key: str) -> frozenset[str]:
    return frozenset(key.split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _tickers_of(value: object) -> list[str]:
    if isinstance(value, str):
        return [t for t in value.split(",") if t.strip()]
    if value is None or (not isinstance(value, (list, tuple, set)) and pd.isna(value)):
        return []
    return list(value)


def _split_sources(value: object) -> list[str]:
    if value is None or pd.isna(value):
        return []
    return [s.strip() for s in str(value).replace(";", ",").split(",") if s.strip()]


def extract_events(
    news: pd.DataFrame,
    universe: pd.DataFrame,
    include: Sequence[str] = (),
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    prior: pd.DataFrame | None = None,
    provider_tickers: bool = True,
) -> pd.DataFrame:
    """The rules backend: `news` rows (NEWS_COLUMNS) -> EVENT_COLUMNS, ordered by minute.

    `prior` (EVENT_COLUMNS, optional) are events already stored before this window: a story
    repeating one of them within DEDUP_WINDOW is marked `duplicate_of` it, not a new event.
    `provider_tickers=False` ignores the news row's `tickers` (the provider's tags) and keeps
    only what the headline names: some feeds tag a story with the page it was listed on.
    """
    if news.empty:
        return empty_frame(EVENT_COLUMNS)
    rows = news.copy()
    rows["key"] = rows["headline"].fillna("").astype(str).map(story_key)
    rows = rows[rows["key"] != ""]
    rows = rows.sort_values(["minute", "published_at", "news_id"], kind="stable")

    # First events already stored: (time, key, words, id).
    roots: list[tuple[pd.Timestamp, str, frozenset[str], str]] = []
    if prior is not None and not prior.empty:
        first = prior[prior["duplicate_of"].fillna("") == ""]
        for pub, headline, eid in zip(
            first["published_at"], first["headline"], first["event_id"], strict=True
        ):
            key = story_key(str(headline))
            roots.append((pd.Timestamp(pub), key, _words(key), str(eid)))

    events: list[dict[str, object]] = []
    for (minute, key), group in rows.groupby(["minute", "key"], sort=False):
        published = pd.Timestamp(group["published_at"].min())
        raw_headline = str(group["headline"].iloc[0])
        provider = (
            sorted({t for v in group["tickers"] for t in _tickers_of(v)})
            if provider_tickers
            else []
        )
        tickers = match_tickers(raw_headline, universe, provider)
        event_type, urgency, _hits = classify(raw_headline)
        if not tickers and event_type != "macro":
            continue
        flagged = bool(is_injection(raw_headline))
        relevant, reason = relevance(raw_headline, include, exclude)
        if flagged:
            relevant, reason, urgency = False, "flagged: instruction-like text", 1
        eid = event_id(key, published)
        words = _words(key)
        duplicate_of = ""
        for root_time, root_key, root_words, root_id in roots:
            if abs(published - root_time) > DEDUP_WINDOW:
                continue
            if root_key == key or jaccard(words, root_words) >= DEDUP_JACCARD:
                duplicate_of = root_id
                break
        if not duplicate_of:
            roots.append((published, key, words, eid))
        events.append(
            {
                "minute": minute,
                "event_id": eid,
                "tickers": ",".join(tickers),
                "event_type": event_type,
                "urgency": urgency,
                "relevant": relevant,
                "relevance_reason": reason,
                "headline": clean(raw_headline),
                "news_ids": json.dumps(sorted(dict.fromkeys(group["news_id"].astype(str)))),
                "sources": ",".join(
                    dict.fromkeys(s for v in group["source"] for s in _split_sources(v))
                ),
                "duplicate_of": duplicate_of,
                "published_at": published,
                "model": RULES_MODEL,
                "flagged": flagged,
            }
        )
    if not events:
        return empty_frame(EVENT_COLUMNS)
    frame = conform(pd.DataFrame(events), EVENT_COLUMNS)
    return frame.sort_values(["minute", "published_at", "event_id"], kind="stable").reset_index(
        drop=True
    )


def events_frame(events: Iterable[MarketEvent]) -> pd.DataFrame:
    """LLM-backend answers -> the same EVENT_COLUMNS frame."""
    rows = [e.to_row() for e in events]
    return conform(pd.DataFrame(rows), EVENT_COLUMNS) if rows else empty_frame(EVENT_COLUMNS)

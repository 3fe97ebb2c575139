"""A stored debate as people read it: the verdict, then each side's turns, as Markdown.

The `debate` table keeps every debated ticker-minute's transcript as JSON (`transcript_json`);
this renders one for the Dagster UI (the `debate` materialization) and the terminal
(`python -m trading_assets.transcript`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd

from trading_assets.research.debate import transcript_from_json

VERDICT_COLUMNS = ("minute", "ticker", "action", "stance", "confidence", "consensus", "rationale")


def transcript_markdown(row: Mapping[str, object]) -> str:
    """One debated ticker-minute (a `debate` row) as Markdown: who argued what, then the call."""
    minute = pd.Timestamp(row["minute"])  # type: ignore[arg-type]
    head = (
        f"### {row['ticker']} {minute:%Y-%m-%d %H:%M}: {row['action']} "
        f"({row['stance']}, confidence {float(row['confidence']):.2f}, "  # type: ignore[arg-type]
        f"consensus {row['consensus']}, horizon {row['horizon_minutes']} min)"
    )
    lines = [head, "", f"**Judge:** {row['rationale']}", ""]
    triggers = json.loads(str(row.get("trigger_reasons") or "[]"))
    if triggers:
        lines += [f"*Debated because:* {'; '.join(map(str, triggers))}", ""]
    for turn in transcript_from_json(str(row["transcript"])):
        cites = ", ".join(turn.cited_analysts) or "no analyst"
        lines.append(
            f"**{turn.side.value.title()}, round {turn.round}** "
            f"(strength {turn.strength:.2f}; cites {cites}): {turn.thesis}"
        )
        lines += [f"- {point}" for point in turn.points]
        if turn.rebuttal:
            lines.append(f"- *answers:* {turn.rebuttal}")
        lines += [f"- *precedent:* {line}" for line in turn.event_evidence]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def notable(debated: pd.DataFrame, count: int = 3) -> pd.DataFrame:
    """The debates worth reading first: trades before holds, the most confident first."""
    if debated.empty:
        return debated
    ranked = debated.assign(_trades=debated["action"] != "HOLD")
    ranked = ranked.sort_values(["_trades", "confidence", "minute"], ascending=[False, False, True])
    return ranked.drop(columns="_trades").head(count)


def verdict_rows(debated: pd.DataFrame, limit: int) -> list[dict[str, object]]:
    """The latest `limit` verdicts, oldest first, as plain records for a metadata table."""
    rows = debated.sort_values(["minute", "ticker"]).tail(limit)
    return [
        {
            "minute": f"{pd.Timestamp(r.minute):%Y-%m-%d %H:%M}",
            "ticker": str(r.ticker),
            "action": str(r.action),
            "stance": str(r.stance),
            "confidence": round(float(r.confidence), 2),
            "consensus": str(r.consensus),
            "rationale": str(r.rationale)[:100],
        }
        for r in rows.itertuples()
    ]

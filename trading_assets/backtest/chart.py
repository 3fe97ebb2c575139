"""The equity and drawdown chart of a backtest, as PNG bytes for Dagster metadata.

Rendered with matplotlib's Agg canvas on a bare `Figure` (no pyplot, no display, no global
state), so it works in a daemon or a run worker. The x axis is the trading-minute index, so
nights and weekends take no room and strategies line up minute by minute; ticks name the
sessions.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # matplotlib (~0.8 s of imports) loads on the first chart, not with the code
    from matplotlib.figure import Figure  # location that every run worker imports

MAX_DATE_TICKS = 12
# Colour and dash together, so no two lines look alike in the legend (or in grey print); the
# team in black and thicker. Strategies not named here take the colour cycle, solid.
STYLES: dict[str, dict[str, object]] = {
    "agents": {"color": "black", "linewidth": 1.8, "linestyle": "-"},
    "buy_and_hold": {"color": "#1f77b4", "linestyle": "--"},
    "sma_crossover": {"color": "#ff7f0e", "linestyle": "-."},
    "macd": {"color": "#2ca02c", "linestyle": ":"},
    "kdj_rsi": {"color": "#d62728", "linestyle": (0, (5, 1, 1, 1, 1, 1))},
    "zero_mean_reversion": {"color": "#9467bd", "linestyle": (0, (1, 3))},
}


def equity_figure(curves: dict[str, pd.DataFrame], title: str) -> Figure:
    """Two panels sharing the x axis: equity normalised to 1.0 at the start (the curve's
    `attrs["starting_equity"]`, else its first equity), and drawdown, one line per strategy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    equity_axes, drawdown_axes = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    minutes = pd.DatetimeIndex(
        sorted(set().union(*(curve["minute"] for curve in curves.values())) if curves else [])
    )
    for name, curve in curves.items():
        if curve.empty:
            continue
        x = minutes.get_indexer(pd.DatetimeIndex(curve["minute"]))
        start = float(curve.attrs.get("starting_equity") or curve["equity"].iloc[0])
        style = {"linewidth": 1.0, **STYLES.get(name, {})}
        equity_axes.plot(x, curve["equity"].to_numpy() / start, label=name, **style)
        drawdown_axes.plot(x, curve["drawdown"].to_numpy() * 100.0, label=name, **style)
    equity_axes.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
    equity_axes.set_ylabel("equity (start = 1.0)")
    equity_axes.set_title(title)
    if curves:
        equity_axes.legend(loc="best", fontsize="small", handlelength=4)
    drawdown_axes.set_ylabel("drawdown (%)")
    drawdown_axes.set_xlabel("session (trading minutes; nights omitted)")
    if len(minutes):
        dates = pd.Series(minutes.date)
        firsts = dates.index[dates.ne(dates.shift())].to_numpy()
        step = max(1, -(-len(firsts) // MAX_DATE_TICKS))
        ticks = firsts[::step]
        drawdown_axes.set_xticks(ticks, [str(dates.iloc[i]) for i in ticks], rotation=30)
        for axes in (equity_axes, drawdown_axes):
            for first in firsts[1:]:
                axes.axvline(first, color="lightgrey", linewidth=0.5)
    return figure


def equity_chart_png(curves: dict[str, pd.DataFrame], title: str) -> bytes:
    """`equity_figure` rendered as PNG bytes."""
    buffer = io.BytesIO()
    equity_figure(curves, title).savefig(buffer, format="png")
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """An inline Markdown image (a data URI), which `MetadataValue.md` shows in the Dagster UI."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"

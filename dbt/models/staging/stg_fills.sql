-- Simulated fills, one row per execution: the team's (backtest_fills) and the baselines'
-- (baseline_fills); empty when no backtest has run.
-- `is_opening`: the fill opens its round trip (a long's buys, a short's sells), whatever the
-- strategy calls its reasons.
with fills as (
    {{ optional_source('trading', 'backtest_fills', var('backtest_fill_columns')) }}
    union all
    {{ optional_source('trading', 'baseline_fills', var('backtest_fill_columns')) }}
)

select
    strategy || ':' || trade_id || ':' || strftime(minute, '%Y-%m-%dT%H:%M') || ':' || reason
        as fill_id,
    minute,
    cast(minute as date) as session_date,
    strategy,
    trade_id,
    signal_minute,
    ticker,
    position_side,
    side,
    reason,
    (position_side = 'long' and side = 'buy') or (position_side = 'short' and side = 'sell')
        as is_opening,
    qty,
    price,
    reference_price,
    commission,
    slippage_cost,
    cash_delta
from fills

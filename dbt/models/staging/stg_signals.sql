-- The trading agent's and risk manager's decisions: one row per proposal.
select
    signal_id,
    minute,
    cast(minute as date) as session_date,
    ticker,
    action,
    proposed_action,
    status,
    qty,
    entry,
    stop,
    take_profit,
    confidence,
    sector,
    horizon_minutes,
    model,
    portfolio_source,
    equity,
    open_positions,
    action <> 'HOLD' and status in ('approved', 'resized') and qty > 0 as is_actionable
from {{ source('trading', 'trade_signals') }}

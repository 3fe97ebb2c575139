-- The live order ledger (broker_orders), one row per signal sent or skipped; empty in a
-- warehouse that has only been backtested (the table is then absent).
with orders as (
    {{ optional_source('trading', 'broker_orders', var('ledger_columns')) }}
)

select
    signal_id,
    minute,
    cast(minute as date) as session_date,
    ticker,
    side,
    case side when 'buy' then 'long' when 'sell' then 'short' end as position_side,
    qty,
    signal_status,
    state,
    reason,
    broker_order_id,
    broker,
    attempts,
    submitted_at,
    filled_qty,
    entry_ref,
    entry_price,
    entry_filled_at,
    stop,
    take_profit,
    nullif(exit_reason, '') as exit_reason,
    exit_price,
    exit_filled_at,
    realised_pnl,
    recorded_at
from orders

-- Round trips: one row per (strategy, trade_id) out of the fills. An entry may fill in parts
-- over several bars; the exit is one fill (stop, take-profit, the close, or a baseline's exit).
-- net_pnl is the sum of every fill's cash_delta (commissions and slippage included); for a
-- trade still open (exit_qty < qty) it is not a P&L yet, and the marts leave such trades out.
with fills as (
    select * from {{ ref('stg_fills') }}
),

trades as (
    select
        strategy,
        trade_id,
        min(ticker) as ticker,
        min(position_side) as side,
        min(signal_minute) as signal_minute,
        sum(qty) filter (where is_opening) as qty,
        coalesce(sum(qty) filter (where not is_opening), 0) as exit_qty,
        min(minute) filter (where is_opening) as entry_minute,
        max(minute) filter (where not is_opening) as exit_minute,
        sum(qty * price) filter (where is_opening) / sum(qty) filter (where is_opening)
            as avg_entry_price,
        sum(qty * price) filter (where not is_opening)
            / nullif(sum(qty) filter (where not is_opening), 0) as avg_exit_price,
        arg_max(reason, minute) filter (where not is_opening) as exit_reason,
        count(*) filter (where is_opening) as entry_fills,
        count(*) as fills,
        sum(commission) as commission,
        sum(slippage_cost) as slippage_cost,
        sum(cash_delta) as net_pnl
    from fills
    group by strategy, trade_id
)

select
    strategy || ':' || trade_id as trade_key,
    strategy,
    trade_id,
    ticker,
    side,
    cast(entry_minute as date) as session_date,
    signal_minute,
    entry_minute,
    exit_minute,
    qty,
    exit_qty,
    avg_entry_price,
    avg_exit_price,
    exit_reason,
    entry_fills,
    fills,
    commission,
    slippage_cost,
    net_pnl,
    net_pnl + commission as gross_pnl,
    net_pnl / (qty * avg_entry_price) as return_pct,
    date_diff('minute', entry_minute, exit_minute) as holding_minutes,
    abs(exit_qty - qty) < 1e-9 as is_closed,
    net_pnl > 0 as is_win
from trades

order by strategy, entry_minute, trade_id

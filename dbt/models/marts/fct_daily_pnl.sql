-- Closed round trips per strategy and session (the session of the entry; nothing carries
-- overnight), with the running total per strategy.
with trades as (
    select * from {{ ref('fct_trades') }}
    where is_closed
),

daily as (
    select
        strategy,
        session_date,
        count(*) as trades,
        count(*) filter (where is_win) as wins,
        count(*) filter (where not is_win) as losses,
        sum(net_pnl) as pnl,
        sum(gross_pnl) as gross_pnl,
        sum(commission) as commissions,
        sum(slippage_cost) as slippage,
        sum(qty * avg_entry_price) as traded_notional
    from trades
    group by strategy, session_date
)

select
    strategy || ':' || strftime(session_date, '%Y-%m-%d') as strategy_day,
    *,
    wins / trades as win_rate,
    sum(pnl) over (
        partition by strategy order by session_date rows between unbounded preceding and current row
    ) as cumulative_pnl
from daily

order by strategy, session_date

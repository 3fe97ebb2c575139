-- Each strategy over every closed round trip in the warehouse.
-- profit_factor = gross profits / gross losses (NULL when nothing lost).
with trades as (
    select * from {{ ref('fct_trades') }}
    where is_closed
)

select
    strategy,
    count(*) as trades,
    count(*) filter (where is_win) as wins,
    count(*) filter (where not is_win) as losses,
    count(*) filter (where is_win) / count(*) as win_rate,
    sum(net_pnl) as total_pnl,
    coalesce(sum(net_pnl) filter (where net_pnl > 0), 0) as gross_profit,
    coalesce(-sum(net_pnl) filter (where net_pnl < 0), 0) as gross_loss,
    coalesce(sum(net_pnl) filter (where net_pnl > 0), 0)
        / nullif(-sum(net_pnl) filter (where net_pnl < 0), 0)
        as profit_factor,
    avg(net_pnl) as avg_pnl_per_trade,
    avg(return_pct) as avg_return_per_trade,
    max(net_pnl) as best_trade_pnl,
    min(net_pnl) as worst_trade_pnl,
    max(return_pct) as best_trade_return,
    min(return_pct) as worst_trade_return,
    sum(commission) as total_commission,
    sum(slippage_cost) as total_slippage,
    avg(holding_minutes) as avg_holding_minutes,
    count(distinct session_date) as sessions,
    min(session_date) as first_session,
    max(session_date) as last_session
from trades
group by strategy
order by strategy

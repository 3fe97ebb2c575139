-- Every dollar of the fills lands in exactly one round trip: per strategy, the trades' net P&L
-- equals the fills' cash_delta (and the trade count equals the distinct trade ids).
{{ config(meta={'dagster': {'ref': {'name': 'fct_trades'}}}) }}

with from_fills as (
    select strategy, sum(cash_delta) as cash, count(distinct trade_id) as trades
    from {{ ref('stg_fills') }}
    group by strategy
),

from_trades as (
    select strategy, sum(net_pnl) as cash, count(*) as trades
    from {{ ref('fct_trades') }}
    group by strategy
)

select *
from from_fills as f
full outer join from_trades as t using (strategy)
where f.cash is null
    or t.cash is null
    or abs(f.cash - t.cash) > 1e-6
    or f.trades <> t.trades

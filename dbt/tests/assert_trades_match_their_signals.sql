-- The agents' round trips are the actionable signals: each trade of strategy 'agents' has a
-- signal with the same id, ticker, minute and direction, and never more shares than it asked.
{{ config(meta={'dagster': {'ref': {'name': 'fct_trades'}}}) }}

select t.*, s.signal_id as found
from {{ ref('fct_trades') }} as t
left join {{ ref('stg_signals') }} as s
    on s.signal_id = t.trade_id
where t.strategy = 'agents'
    and (
        s.signal_id is null
        or s.ticker <> t.ticker
        or s.minute <> t.signal_minute
        or not s.is_actionable
        or (s.action = 'BUY') <> (t.side = 'long')
        or t.qty > s.qty
    )

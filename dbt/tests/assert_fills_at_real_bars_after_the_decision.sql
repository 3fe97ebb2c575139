-- The point-in-time rule, checked on the backtest: every fill happens in a bar that exists for
-- its ticker, strictly after the minute its signal was decided (no earlier than bar m+1), in
-- the same session, and an entry's price is that bar's open (slippage aside: within its range).
{{ config(meta={'dagster': {'ref': {'name': 'stg_fills'}}}) }}

select f.*, b.minute as bar_minute
from {{ ref('stg_fills') }} as f
left join {{ ref('stg_bars') }} as b
    on b.ticker = f.ticker and b.minute = f.minute
where b.minute is null
    or f.minute <= f.signal_minute
    or cast(f.minute as date) <> cast(f.signal_minute as date)
    or (f.reason = 'entry' and f.reference_price <> b.open)

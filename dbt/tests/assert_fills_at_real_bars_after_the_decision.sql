-- The point-in-time rule, checked on the backtest: every fill happens in a bar that exists for
-- its ticker, in the session its trade was decided in (except buy-and-hold, held overnight by
-- definition), never before the decision; the team's
-- fills (strategy 'agents') strictly after it: a signal at minute m fills from the open of bar
-- m+1. (A baseline may act at the decision bar's open: buy-and-hold's "decision" is the open.)
-- An entry's reference price is its bar's open.
{{ config(meta={'dagster': {'ref': {'name': 'stg_fills'}}}) }}

select f.*, b.minute as bar_minute, b.open as bar_open
from {{ ref('stg_fills') }} as f
left join {{ ref('stg_bars') }} as b
    on b.ticker = f.ticker and b.minute = f.minute
where b.minute is null
    or f.minute < f.signal_minute
    or (f.strategy = 'agents' and f.minute <= f.signal_minute)
    or (f.strategy <> 'buy_and_hold' and cast(f.minute as date) <> cast(f.signal_minute as date))
    or (f.reason = 'entry' and f.reference_price <> b.open)

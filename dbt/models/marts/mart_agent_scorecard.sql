-- Who was right: each agent's directional calls against the ticker's return over the next
-- 5 / 15 / 30 minutes, close(minute + h) / close(minute) - 1, within the same session.
-- A call is a bullish/bearish analyst stance or a BUY/SELL verdict of the judge; a neutral
-- stance is not a call (counted apart as neutral_views). A call without a bar at minute + h in
-- its session (the last minutes of a day, or a missing bar) is excluded, not counted as wrong.
-- hit: the signed return is > 0 (a flat return is a miss).
{% set horizons = [5, 15, 30] %}
{% set agents = ['technical', 'fundamental', 'sentiment', 'macro', 'judge'] %}

with bars as (
    select ticker, minute, session_date, close from {{ ref('stg_bars') }}
),

horizons as (
    select unnest({{ horizons }}) as horizon_minutes
),

forward_returns as (
    select
        now_.ticker,
        now_.minute,
        h.horizon_minutes,
        later.close / now_.close - 1 as forward_return
    from bars as now_
    cross join horizons as h
    inner join bars as later
        on later.ticker = now_.ticker
        and later.session_date = now_.session_date
        and later.minute = now_.minute + to_minutes(h.horizon_minutes)
),

scored as (
    select
        c.agent,
        r.horizon_minutes,
        c.direction,
        c.direction * r.forward_return as signed_return
    from {{ ref('stg_agent_calls') }} as c
    inner join forward_returns as r
        on r.ticker = c.ticker and r.minute = c.minute
),

stats as (
    select
        agent,
        horizon_minutes,
        count(*) filter (where direction <> 0) as calls,
        count(*) filter (where direction <> 0 and signed_return > 0) as hits,
        count(*) filter (where direction > 0) as bullish_calls,
        count(*) filter (where direction < 0) as bearish_calls,
        count(*) filter (where direction = 0) as neutral_views,
        avg(signed_return) filter (where direction <> 0) as avg_signed_return
    from scored
    group by agent, horizon_minutes
),

grid as (
    select agent, horizon_minutes
    from (select unnest({{ agents }}) as agent)
    cross join horizons
)

select
    g.agent || ':' || g.horizon_minutes as agent_horizon,
    g.agent,
    g.horizon_minutes,
    coalesce(s.calls, 0) as calls,
    coalesce(s.hits, 0) as hits,
    s.hits / nullif(s.calls, 0) as hit_rate,
    s.avg_signed_return,
    s.avg_signed_return * 10000 as avg_signed_return_bps,
    coalesce(s.bullish_calls, 0) as bullish_calls,
    coalesce(s.bearish_calls, 0) as bearish_calls,
    coalesce(s.neutral_views, 0) as neutral_views
from grid as g
left join stats as s
    on s.agent = g.agent and s.horizon_minutes = g.horizon_minutes
order by g.agent, g.horizon_minutes

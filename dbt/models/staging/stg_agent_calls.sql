-- Every agent's directional view per ticker-minute: the four analysts' stances and the judge's
-- verdicts (debated ticker-minutes only; the undebated rows are the gate's HOLD, not a view).
-- direction: +1 bullish / BUY, -1 bearish / SELL, 0 neutral / HOLD.
{% set analysts = ['technical', 'fundamental', 'sentiment', 'macro'] %}

with analysts as (
    {% for analyst in analysts %}
    select
        '{{ analyst }}' as agent,
        minute,
        ticker,
        stance,
        score,
        confidence,
        model
    from {{ source('trading', analyst ~ '_analysis') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

judge as (
    select
        'judge' as agent,
        minute,
        ticker,
        case action when 'BUY' then 'bullish' when 'SELL' then 'bearish' else 'neutral' end
            as stance,
        case action when 'BUY' then confidence when 'SELL' then -confidence else 0 end as score,
        confidence,
        model
    from {{ source('trading', 'debate') }}
    where debated
),

calls as (
    select * from analysts
    union all
    select * from judge
)

select
    agent,
    minute,
    cast(minute as date) as session_date,
    ticker,
    stance,
    case stance when 'bullish' then 1 when 'bearish' then -1 else 0 end as direction,
    score,
    confidence,
    model
from calls

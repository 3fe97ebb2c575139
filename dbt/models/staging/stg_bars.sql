-- One-minute bars, one row per ticker and bar start (naive New York time).
select
    minute,
    cast(minute as date) as session_date,
    ticker,
    open,
    high,
    low,
    close,
    volume,
    vwap,
    trade_count,
    provider
from {{ source('trading', 'bars') }}

"""One resource that picks a provider per dataset: `replay` (offline default), `alpaca`, `finnhub`.

Chosen by config (launchpad / run config) or by environment at load time (see
trading_assets.definitions). Keys are EnvVar-backed fields: Dagster shows the variable's name,
never its value, and a selected provider without its key fails with the variable to set.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from dagster import ConfigurableResource
from pydantic import PrivateAttr

from resources.errors import ProviderConfigError
from resources.providers.base import BarsProvider, FactsProvider, NewsProvider
from resources.providers.replay import BUNDLED_REPLAY_DIR, ReplayProvider
from trading_assets.schemas import PROVIDER_NEWS_COLUMNS, empty_frame

PROVIDERS = {
    "bars": ("replay", "alpaca"),
    "news": ("replay", "alpaca", "finnhub"),
    "fundamentals": ("replay", "finnhub"),
}


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class MarketDataResource(ConfigurableResource):
    """Market data providers and the ticker universe."""

    bars_provider: str = "replay"
    news_providers: str = "replay"  # comma-separated: stories are deduplicated across them
    fundamentals_provider: str = "replay"
    tickers: str = ""  # comma-separated; empty = every ticker with bars in the replay folder
    replay_dir: str = ""  # empty = the bundled real data
    news_lookback_days: float = 4.0  # how far back a story counts as already seen

    alpaca_api_key: str = ""
    alpaca_secret_key: str = ""
    alpaca_feed: str = "iex"
    alpaca_data_url: str = ""  # empty = Alpaca's; a local server in tests
    finnhub_api_key: str = ""
    finnhub_base_url: str = ""
    finnhub_calls_per_minute: int = 60

    _cache: dict[str, object] = PrivateAttr(default_factory=dict)

    # -- choice ---------------------------------------------------------------------------

    def replay(self) -> ReplayProvider:
        if "replay" not in self._cache:
            self._cache["replay"] = ReplayProvider(self.replay_dir or BUNDLED_REPLAY_DIR)
        return self._cache["replay"]  # type: ignore[return-value]

    def universe(self) -> list[str]:
        explicit = [t.upper() for t in _split(self.tickers)]
        return sorted(dict.fromkeys(explicit)) if explicit else self.replay().default_tickers()

    def universe_table(self) -> pd.DataFrame:
        """ticker, name, aliases of every universe ticker (universe.csv's rows; a ticker the file
        does not know gets an empty name): what a headline may call each company."""
        known = self.replay().universe().set_index("ticker")
        rows = [
            {
                "ticker": t,
                "name": str(known.at[t, "name"]) if t in known.index else "",
                "aliases": str(known.at[t, "aliases"]) if t in known.index else "",
            }
            for t in self.universe()
        ]
        table = pd.DataFrame(rows, columns=["ticker", "name", "aliases"])
        return table.replace({"nan": ""})

    def index_tickers(self) -> list[str]:
        """The universe's ETFs (SPY, QQQ): the macro analyst's market, not traded by the team."""
        etfs = self.replay().universe()
        etf_set = set(etfs.loc[etfs["asset_type"].str.lower() == "etf", "ticker"])
        return [t for t in self.universe() if t in etf_set]

    def company_names(self) -> dict[str, str]:
        """The name a headline uses for each ticker (first alias in universe.csv, e.g. "Apple");
        the ticker itself where the universe file does not know it."""
        known = self.replay().universe().set_index("ticker")["aliases"].fillna("")
        return {t: (str(known.get(t, "")).split(";")[0].strip() or t) for t in self.universe()}

    def sectors(self) -> dict[str, str]:
        """GICS sector per universe ticker (the risk manager's sector limit); unknown ones are
        left out and share one conservative bucket there."""
        known = self.replay().universe().set_index("ticker")["sector"].dropna()
        return {t: str(known[t]) for t in self.universe() if t in known.index and known[t]}

    def stock_tickers(self) -> list[str]:
        """The tickers the analysts cover and the team trades: the universe less its ETFs."""
        etfs = set(self.index_tickers())
        return [t for t in self.universe() if t not in etfs]

    def bars_source(self) -> BarsProvider:
        return self._provider(self.bars_provider, "bars")  # type: ignore[return-value]

    def news_sources(self) -> list[NewsProvider]:
        names = _split(self.news_providers) or ["replay"]
        return [self._provider(n, "news") for n in dict.fromkeys(names)]  # type: ignore[misc]

    def facts_source(self) -> FactsProvider:
        return self._provider(self.fundamentals_provider, "fundamentals")  # type: ignore[return-value]

    def describe(self) -> dict[str, str]:
        """What a run used, for asset metadata (no secrets)."""
        return {
            "bars_provider": self.bars_provider,
            "news_providers": ",".join(_split(self.news_providers)),
            "fundamentals_provider": self.fundamentals_provider,
            "replay_dir": str(self.replay().folder) if self._uses_replay() else "",
        }

    def _uses_replay(self) -> bool:
        chosen = [self.bars_provider, self.fundamentals_provider, *_split(self.news_providers)]
        return any(name.strip().lower() == "replay" for name in chosen)

    def _provider(self, name: str, dataset: str) -> object:
        name = name.strip().lower()
        if name not in PROVIDERS[dataset]:
            raise ProviderConfigError(
                f"{dataset} provider '{name}' is not supported; choose one of {PROVIDERS[dataset]}"
            )
        if name == "replay":
            return self.replay()
        if name not in self._cache:
            self._cache[name] = self._build_remote(name)
        return self._cache[name]

    def _build_remote(self, name: str) -> object:
        if name == "alpaca":
            from resources.providers.alpaca import AlpacaProvider

            if not self.alpaca_api_key or not self.alpaca_secret_key:
                raise ProviderConfigError(
                    "the alpaca provider needs ALPACA_API_KEY and ALPACA_SECRET_KEY in the "
                    "environment (or choose the replay provider)"
                )
            return AlpacaProvider(
                api_key=self.alpaca_api_key,
                secret_key=self.alpaca_secret_key,
                feed=self.alpaca_feed,
                data_url=self.alpaca_data_url or None,
            )
        from resources.providers.finnhub import FinnhubProvider

        if not self.finnhub_api_key:
            raise ProviderConfigError(
                "the finnhub provider needs FINNHUB_API_KEY in the environment "
                "(or choose the replay provider)"
            )
        return FinnhubProvider(
            api_key=self.finnhub_api_key,
            base_url=self.finnhub_base_url or None,
            calls_per_minute=self.finnhub_calls_per_minute,
        )

    # -- data -----------------------------------------------------------------------------

    def fetch_bars(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return self.bars_source().fetch_bars(self.universe(), start, end)

    def fetch_news(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        frames = [p.fetch_news(self.universe(), start, end) for p in self.news_sources()]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return empty_frame(PROVIDER_NEWS_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def fetch_facts(self, tickers: Sequence[str] | None = None) -> pd.DataFrame:
        return self.facts_source().fetch_facts(list(tickers or self.universe()))

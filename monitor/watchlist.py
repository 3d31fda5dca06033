"""The analyst's watchlist: the same CSV the entity linker reads (``FINPULSE_ENTITIES_WATCHLIST``, rows
``ticker,name,aliases``). It filters the dashboard's Overview and routes alerts on its companies to the
webhooks marked ``"watchlist": true``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.entities import read_alias_table


@dataclass(frozen=True, slots=True)
class Watchlist:
    names: tuple[tuple[str, str], ...] = ()  # (entity key, company name), file order

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.names)


def read_watchlist(path: str | None) -> Watchlist:
    """The watchlist file's companies (an empty watchlist when no file is configured); a missing or malformed
    file is a ConfigError naming the line."""
    if not path:
        return Watchlist()
    names, _ = read_alias_table(Path(path), "watchlist", frozenset())
    return Watchlist(tuple(names.items()))

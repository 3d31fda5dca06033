"""Fetching a feed with every size and time bounded: connect / read timeouts, a total deadline (a server that
trickles one byte every few seconds defeats a read timeout), a cap on the bytes downloaded and a cap on the
bytes after decompression (a gzip bomb stops at the cap instead of filling memory). The bytes are parsed by
feedparser afterwards; feedparser itself never touches the network."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import httpx

from monitor.errors import FinPulseError

USER_AGENT = "FinPulse/0.1 (+rss ingest)"


class FetchError(FinPulseError):
    """A feed could not be fetched within its bounds (the message says which)."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 60.0
    max_bytes: int = 10_000_000  # after decompression; the download itself is capped at the same size


def _decoder(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    if encoding in ("", "identity"):
        return None
    raise FetchError(f"unsupported Content-Encoding {encoding!r}")


def _inflate(decoder: zlib._Decompress, chunk: bytes, room: int) -> bytes:
    """Decompress ``chunk`` but never more than ``room + 1`` bytes (enough to tell the cap was passed)."""
    out = decoder.decompress(chunk, room + 1)
    while decoder.unconsumed_tail and len(out) <= room:
        out += decoder.decompress(decoder.unconsumed_tail, room + 1 - len(out))
    return out


def fetch_feed(client: httpx.Client, url: str, limits: FetchLimits, clock: object = time.monotonic) -> bytes:
    """GET ``url`` within ``limits``; raises FetchError (never hangs, never holds more than ``max_bytes``)."""
    now = clock  # type: ignore[assignment]
    deadline = now() + limits.total_timeout_s  # type: ignore[operator]
    body = bytearray()
    try:
        with client.stream("GET", url, headers={"Accept-Encoding": "gzip, deflate"}) as resp:
            if resp.status_code >= 400:
                raise FetchError(f"HTTP {resp.status_code}")
            decoder = _decoder(resp.headers.get("Content-Encoding", ""))
            downloaded = 0
            for (
                chunk
            ) in resp.iter_raw():  # as received (a chunk size would buffer a trickle past the deadline)
                downloaded += len(chunk)
                room = limits.max_bytes - len(body)
                body += _inflate(decoder, chunk, room) if decoder else chunk
                if len(body) > limits.max_bytes or downloaded > limits.max_bytes:
                    raise FetchError(f"feed larger than {limits.max_bytes} bytes (after decompression)")
                if now() > deadline:  # type: ignore[operator]
                    raise FetchError(f"feed not received within {limits.total_timeout_s:.0f} s")
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    except zlib.error as exc:
        raise FetchError(f"corrupt compressed body: {exc}") from exc
    return bytes(body)


def make_client(limits: FetchLimits) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(limits.read_timeout_s, connect=limits.connect_timeout_s),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        max_redirects=5,
    )

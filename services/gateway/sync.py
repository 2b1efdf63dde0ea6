"""``sync``: fetch a user's durable frames from the services that own each stream.

The gateway owns no tables: it asks each stream's owner over internal HTTP and merges the
answers. Streams this deployment does not serve yet are echoed in the cursor unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from services.gateway.domain.errors import UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class SyncPage:
    """What a sync answer carries."""

    events: list[Any]
    cursor: dict[str, int]
    has_more: bool


class SyncClient:
    """Reads durable streams from their owners.

    Args:
        client: shared HTTP client (connection pooling across requests).
        stream_urls: stream name -> base URL of the owning service.
        internal_token: sent as ``X-Internal-Token`` when set.
    """

    def __init__(
        self, *, client: httpx.AsyncClient, stream_urls: dict[str, str], internal_token: str | None
    ) -> None:
        self._client = client
        self._stream_urls = stream_urls
        self._headers = {"X-Internal-Token": internal_token} if internal_token else {}

    async def sync(self, *, user_id: str, cursor: dict[str, int], limit: int | None) -> SyncPage:
        """Frames after ``cursor`` for every stream, each stream oldest first.

        Raises:
            UpstreamUnavailable: an owner is unreachable or answered with an error.
        """
        events: list[Any] = []
        new_cursor = dict(cursor)
        has_more = False
        for stream, base_url in self._stream_urls.items():
            params: dict[str, int] = {"after": cursor.get(stream, 0)}
            if limit is not None:
                params["limit"] = limit
            try:
                response = await self._client.get(
                    f"{base_url}/internal/v1/streams/{stream}/{quote(user_id, safe='')}",
                    params=params,
                    headers=self._headers,
                )
                response.raise_for_status()
                page = orjson.loads(response.content)
            except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
                raise UpstreamUnavailable(f"{stream} stream") from exc
            events.extend(page["events"])
            new_cursor[stream] = page["last_seq"]
            has_more = has_more or bool(page["has_more"])
        return SyncPage(events=events, cursor=new_cursor, has_more=has_more)

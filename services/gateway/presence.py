"""Reads presence from the presence service over internal HTTP (snapshot after ``hello``,
and the public ``GET /v1/presence`` read API)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from services.gateway.domain.errors import UpstreamUnavailable


class PresenceClient:
    """Asks the presence service what a user may see.

    Args:
        client: shared HTTP client.
        base_url: the presence service's internal URL.
        internal_token: sent as ``X-Internal-Token`` when set.
    """

    def __init__(
        self, *, client: httpx.AsyncClient, base_url: str, internal_token: str | None
    ) -> None:
        self._client = client
        self._url = f"{base_url}/internal/v1/presence"
        self._headers = {"X-Internal-Token": internal_token} if internal_token else {}

    async def visible(self, *, requester: str, user_ids: list[str] | None) -> list[dict[str, Any]]:
        """``presence`` frames of the requester's contacts (all, or those among ``user_ids``).

        Users who share no conversation with the requester are never included.

        Raises:
            UpstreamUnavailable: the service is unreachable or failed (callers degrade: no
                snapshot, or HTTP 503).
        """
        params = {"requester": requester}
        if user_ids is not None:
            params["ids"] = ",".join(user_ids)
        try:
            response = await self._client.get(self._url, params=params, headers=self._headers)
            response.raise_for_status()
            frames: list[dict[str, Any]] = orjson.loads(response.content)["presence"]
        except (httpx.HTTPError, orjson.JSONDecodeError, KeyError) as exc:
            raise UpstreamUnavailable("presence") from exc
        return frames

"""Who people are, from Slack: ``users.info`` (zone, email, name) and ``users.list`` for @handles.

Answers are cached per workspace for a few minutes, so an offer and its click cost one lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import RequestError
from bot.models import Participant

__all__ = ["PeopleCache", "SlackDirectory"]


@dataclass
class PeopleCache:
    """Slack profiles by (team, user), and handle lists by team, kept for ``ttl`` seconds."""

    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    people: dict[tuple[str, str], tuple[float, Participant]] = field(default_factory=dict)
    handles: dict[str, tuple[float, dict[str, list[str]]]] = field(default_factory=dict)
    #: Each person's DM channel with the bot, by team (it never changes).
    dms: dict[str, dict[str, str]] = field(default_factory=dict)

    #: Past this many cached people, stale entries are dropped (a long-running process).
    max_people: int = 10_000

    def fresh(self, stamp: float) -> bool:
        return self.clock() - stamp < self.ttl

    def direct_channels(self, team_id: str) -> dict[str, str]:
        """The team's known DM channels by user, to read and to add to."""
        return self.dms.setdefault(team_id, {})

    def remember(self, team_id: str, person: Participant) -> None:
        if len(self.people) >= self.max_people:
            self.people = {k: v for k, v in self.people.items() if self.fresh(v[0])}
        self.people[(team_id, person.user_id)] = (self.clock(), person)


def _participant(user: Mapping[str, Any]) -> Participant:
    profile = user.get("profile") or {}
    tz = user.get("tz") or "UTC"
    name = profile.get("display_name") or profile.get("real_name") or user.get("real_name")
    try:
        return Participant(
            user_id=str(user["id"]),
            time_zone=str(tz),
            email=profile.get("email") or None,
            display_name=str(name or user.get("name") or user["id"]),
        )
    except (KeyError, ValueError):  # a zone this machine does not know: fall back to UTC
        return Participant(str(user["id"]), "UTC", profile.get("email") or None, name)


class SlackDirectory:
    """The ``Directory`` the scheduler asks, over one workspace's Web API client."""

    def __init__(self, client: AsyncWebClient, cache: PeopleCache) -> None:
        self._client = client
        self._cache = cache

    async def person(self, team_id: str, user_id: str) -> Participant:
        cached = self._cache.people.get((team_id, user_id))
        if cached and self._cache.fresh(cached[0]):
            return cached[1]
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            if exc.response.get("error") in ("user_not_found", "user_not_visible"):
                raise RequestError(
                    f"I couldn't find <@{user_id}> in this workspace. Mention people with @ "
                    "so Slack links them, e.g. `/schedule sync with @Ana tomorrow`."
                ) from None
            raise
        user = response.get("user") or {}
        if user.get("is_bot") or user.get("deleted"):
            raise RequestError(
                f"<@{user_id}> is a bot or a deactivated account, so I can't invite them. "
                "Mention the people who should attend."
            )
        person = _participant(user)
        self._cache.remember(team_id, person)
        return person

    async def find_handle(self, team_id: str, handle: str) -> Participant | None:
        names = await self._handles(team_id)
        matches = names.get(handle.lower().lstrip("@"), [])
        if len(set(matches)) != 1:
            return None
        return await self.person(team_id, matches[0])

    async def _handles(self, team_id: str) -> dict[str, list[str]]:
        cached = self._cache.handles.get(team_id)
        if cached and self._cache.fresh(cached[0]):
            return cached[1]
        names: dict[str, list[str]] = {}
        cursor: str | None = None
        for _ in range(50):  # at most 50 pages of 200 people
            response = await self._client.users_list(limit=200, cursor=cursor)
            for user in response.get("members") or []:
                if user.get("deleted") or user.get("is_bot"):
                    continue
                profile = user.get("profile") or {}
                for name in (
                    user.get("name"),
                    profile.get("display_name"),
                    profile.get("real_name"),
                ):
                    if name:
                        names.setdefault(str(name).lower().replace(" ", ""), []).append(user["id"])
                        names.setdefault(str(name).lower(), []).append(user["id"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        self._cache.handles[team_id] = (self._cache.clock(), names)
        return names

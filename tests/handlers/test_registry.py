"""manifest.yml and the handlers agree: everything the handlers register is declared, everything
declared has a listener, and every button the builders render has someone answering it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from slack_bolt.async_app import AsyncApp

from bot.calendars.local import LocalCalendar
from bot.scheduling.booking import Scheduler
from bot.scheduling.reminders import Reminders
from bot.store import Store, database_url_from
from handlers import Services, blocks, ids, register_handlers
from tests.handlers.test_blocks import at, make_confirmation, make_proposal, slot
from tests.test_manifest import load_manifest, manifest_declarations

Listener = Callable[..., Any]
Matcher = str | re.Pattern[str] | dict[str, Any]


@dataclass
class RecordingRegistrar:
    """Stands in for ``AsyncApp`` at registration: records what each listener listens for."""

    registered: dict[str, list[Any]] = field(default_factory=dict)
    errors: list[Listener] = field(default_factory=list)

    def _recording(self, kind: str, key: Any) -> Callable[[Listener], Listener]:
        self.registered.setdefault(kind, []).append(key)

        def decorator(listener: Listener) -> Listener:
            assert callable(listener)
            return listener

        return decorator

    def command(self, key: Any) -> Callable[[Listener], Listener]:
        return self._recording("command", key)

    def event(self, key: Any) -> Callable[[Listener], Listener]:
        return self._recording("event", key)

    def action(self, key: Any) -> Callable[[Listener], Listener]:
        return self._recording("action", key)

    def view(self, key: Any) -> Callable[[Listener], Listener]:
        return self._recording("view", key)

    def options(self, key: Any) -> Callable[[Listener], Listener]:
        return self._recording("options", key)

    def shortcut(self, key: Any) -> Callable[[Listener], Listener]:
        return self._recording("shortcut", key)

    def error(self, listener: Listener) -> Listener:
        self.errors.append(listener)
        return listener

    def keys(self, kind: str) -> list[Any]:
        return self.registered.get(kind, [])


@pytest.fixture
async def registrar(tmp_path: Path) -> AsyncIterator[RecordingRegistrar]:
    """The handlers registered against a recorder, with a real scheduler behind them."""
    store = await Store.open(database_url_from(f"sqlite:///{tmp_path / 'slotbot.db'}", tmp_path))
    try:
        scheduler = Scheduler(
            store, LocalCalendar(store), clock=lambda: datetime(2026, 11, 26, tzinfo=UTC)
        )
        recorder = RecordingRegistrar()
        reminders = Reminders(store, clock=scheduler.clock)
        register_handlers(cast(AsyncApp, recorder), Services(scheduler, reminders))
        yield recorder
    finally:
        await store.close()


def event_type(key: Any) -> str:
    """The event type a Bolt ``app.event`` key listens for (a name or a constraints dict)."""
    return key if isinstance(key, str) else str(key["type"])


def matches(matcher: Matcher, action_id: str) -> bool:
    if isinstance(matcher, str):
        return matcher == action_id
    if isinstance(matcher, re.Pattern):
        return matcher.search(action_id) is not None
    return matches(matcher["action_id"], action_id) if "action_id" in matcher else False


def rendered_action_ids() -> set[str]:
    """Every action_id the builders put on buttons: a full offer page and a confirmation."""
    offer = make_proposal(tuple(slot(at(1 + i, 9)) for i in range(6)), has_more=True)
    messages = [
        blocks.offer_blocks(offer),
        blocks.offer_blocks(make_proposal(())),
        blocks.confirmation_blocks(make_confirmation()),
        blocks.help_blocks(),
        blocks.withdrawn_blocks(),
    ]
    found: set[str] = set()
    for message in messages:
        for block in (b.to_dict() for b in message):
            for element in [block.get("accessory"), *(block.get("elements") or [])]:
                if isinstance(element, dict) and "action_id" in element:
                    found.add(element["action_id"])
    return found


def test_every_registered_command_is_declared(registrar: RecordingRegistrar) -> None:
    """Each slash command the handlers answer is a manifest slash command, and vice versa."""
    registered = set(registrar.keys("command"))
    assert registered == {ids.COMMAND}
    assert manifest_declarations().commands == registered


def test_every_registered_event_is_subscribed(registrar: RecordingRegistrar) -> None:
    """Each Bolt event listened for is a manifest bot event ('message' needs some message.*)."""
    subscribed = manifest_declarations().bot_events
    registered = {event_type(key) for key in registrar.keys("event")}
    assert registered
    for event in registered:
        if event == "message":
            assert any(e.startswith("message.") for e in subscribed), subscribed
        else:
            assert event in subscribed, f"{event} is handled but not subscribed in manifest.yml"


def test_direct_messages_are_a_surface() -> None:
    """The manifest subscribes to message.im, because people DM the bot to schedule."""
    assert "message.im" in manifest_declarations().bot_events


def test_the_events_constant_matches_the_manifest() -> None:
    """handlers.ids.EVENTS, the code's list of subscriptions, is exactly the manifest's."""
    assert manifest_declarations().bot_events == set(ids.EVENTS)


@pytest.mark.parametrize("event", sorted(manifest_declarations().bot_events))
def test_every_subscribed_event_has_a_listener(registrar: RecordingRegistrar, event: str) -> None:
    """Each manifest bot event is listened for (message.* by a 'message' listener)."""
    registered = {event_type(key) for key in registrar.keys("event")}
    wanted = "message" if event.startswith("message.") else event
    assert wanted in registered, f"manifest.yml subscribes to {event} but no listener handles it"


def test_interactivity_is_on_when_anything_interactive_is_registered(
    registrar: RecordingRegistrar,
) -> None:
    """Actions, views, options or shortcuts registered means interactivity is enabled."""
    interactive = any(registrar.keys(k) for k in ("action", "view", "options", "shortcut"))
    assert interactive
    assert manifest_declarations().interactivity is interactive


def test_every_rendered_button_has_a_listener(registrar: RecordingRegistrar) -> None:
    """Each action_id on a built offer or confirmation matches a registered action matcher."""
    action_ids = rendered_action_ids()
    assert {ids.book_slot_action(0), ids.MORE_TIMES, ids.CANCEL_OFFER} <= action_ids
    assert {ids.RESCHEDULE, ids.CANCEL_BOOKING} <= action_ids
    matchers = registrar.keys("action")
    unanswered = {a for a in action_ids if not any(matches(m, a) for m in matchers)}
    assert unanswered == set()


def test_the_book_slot_matcher_is_not_too_broad(registrar: RecordingRegistrar) -> None:
    """Lookalike action_ids are answered by no listener: matchers are anchored."""
    matchers = registrar.keys("action")
    for lookalike in ("book_slot_x", "xbook_slot_1", "book_slot_1_2", "more_times_2", "cancel"):
        assert not any(matches(m, lookalike) for m in matchers), lookalike


def test_shortcuts_are_declared_if_any_are_registered(registrar: RecordingRegistrar) -> None:
    """Any registered shortcut callback_id is declared under features.shortcuts."""
    declared = {s["callback_id"] for s in load_manifest()["features"].get("shortcuts", [])}
    for key in registrar.keys("shortcut"):
        callback = key if isinstance(key, str) else key.get("callback_id")
        assert callback in declared


def test_one_error_handler_is_registered(registrar: RecordingRegistrar) -> None:
    """Exactly one @app.error handler: one error tree, one place answering it."""
    assert len(registrar.errors) == 1

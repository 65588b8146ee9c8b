"""manifest.yml stays honest: it validates against Slack's schema and declares what Slotbot needs.

``manifest_declarations()`` is the seam for the later cross-check against registered handlers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "manifest.yml"
# The schemas live beside the repo (slackapi/manifest-schema, MIT); an env var may point elsewhere.
SCHEMA_DIR = Path(os.environ.get("SLACK_MANIFEST_SCHEMA_DIR", REPO.parent / "shared" / "slack"))
DISPATCHER = "manifest.schema.json"

REQUIRED_BOT_SCOPES = {
    "commands",
    "chat:write",
    "files:write",
    "files:read",
    "im:write",
    "im:history",
    "app_mentions:read",
    "users:read",
    "users:read.email",
}
REQUIRED_BOT_EVENTS = {"app_mention", "message.im", "app_home_opened"}


@dataclass(frozen=True)
class ManifestDeclarations:
    """What the manifest asks Slack to send us: the entry points handlers must cover."""

    commands: frozenset[str]
    bot_events: frozenset[str]
    interactivity: bool


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """The manifest as the JSON object Slack reads."""
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(manifest, dict), f"{path} is not a YAML mapping"
    return manifest


def manifest_declarations(path: Path = MANIFEST) -> ManifestDeclarations:
    """The slash commands, bot events and interactivity switch that ``path`` declares."""
    manifest = load_manifest(path)
    features = manifest.get("features", {})
    settings = manifest.get("settings", {})
    return ManifestDeclarations(
        commands=frozenset(c["command"] for c in features.get("slash_commands", [])),
        bot_events=frozenset(settings.get("event_subscriptions", {}).get("bot_events", [])),
        interactivity=bool(settings.get("interactivity", {}).get("is_enabled", False)),
    )


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


@cache
def manifest_validator() -> jsonschema.Draft7Validator:
    """A validator for Slack's dispatching schema, its upstream $refs served from local files."""
    if not (SCHEMA_DIR / DISPATCHER).is_file():
        pytest.fail(
            f"Slack's manifest schema is missing: expected {SCHEMA_DIR / DISPATCHER} "
            "(copy slackapi/manifest-schema's files there or set SLACK_MANIFEST_SCHEMA_DIR)"
        )
    dispatcher = json.loads((SCHEMA_DIR / DISPATCHER).read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry()
    # The dispatcher names the versioned schemas by upstream URL; each file is its URL's basename.
    for url in {ref for ref in _refs(dispatcher) if not ref.startswith("#")}:
        local = SCHEMA_DIR / url.rpartition("/")[2]
        assert local.is_file(), f"{DISPATCHER} refers to {url}, but {local} is missing"
        contents = json.loads(local.read_text(encoding="utf-8"))
        registry = registry.with_resource(url, Resource.from_contents(contents, DRAFT7))
    jsonschema.Draft7Validator.check_schema(dispatcher)
    return jsonschema.Draft7Validator(dispatcher, registry=registry)


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    if not error.context:
        return [error]
    return [leaf for cause in error.context for leaf in _leaves(cause)]


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """Every schema violation in ``manifest`` as ``path: message`` lines, without repeats.

    The dispatcher is a ``oneOf`` over schema versions, so the lines include why the other
    versions' branches did not match as well.
    """
    lines: dict[str, None] = {}
    for error in manifest_validator().iter_errors(manifest):
        for leaf in _leaves(error):
            where = "/".join(str(p) for p in leaf.absolute_path) or "(root)"
            lines[f"{where}: {leaf.message}"] = None
    return list(lines)


# --- the schema -----------------------------------------------------------------------------


def test_manifest_validates_against_slacks_schema() -> None:
    """manifest.yml satisfies Slack's public app manifest schema (major version 2)."""
    manifest = load_manifest()
    assert manifest["_metadata"]["major_version"] == 2
    assert schema_errors(manifest) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("display_information", "name"), "S" * 36),
        (("features", "slash_commands", 0, "command"), "schedule"),
        (("settings", "interactivity", "is_enabled"), "yes"),
        (("features", "bot_user", "nickname"), "slotty"),
    ],
    ids=["name too long", "command without slash", "string for a boolean", "unknown key"],
)
def test_schema_check_rejects_a_broken_manifest(path: tuple[str | int, ...], value: Any) -> None:
    """The validator really resolves the versioned schema: broken manifests are refused."""
    manifest = load_manifest()
    node: Any = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert schema_errors(manifest) != []


def test_background_color_is_a_hex_colour() -> None:
    """background_color is #rgb or #rrggbb (the schema's 'regex' keyword is not enforced)."""
    color = load_manifest()["display_information"]["background_color"]
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", color)


# --- what Slotbot needs ---------------------------------------------------------------------


def test_manifest_asks_for_the_bot_scopes_slotbot_uses() -> None:
    """Every bot scope the bot's Web API calls and events need is requested."""
    scopes = set(load_manifest()["oauth_config"]["scopes"]["bot"])
    assert scopes >= REQUIRED_BOT_SCOPES, REQUIRED_BOT_SCOPES - scopes


def test_manifest_declares_command_events_and_interactivity() -> None:
    """/schedule, the three bot events and interactivity are declared."""
    declared = manifest_declarations()
    assert declared.commands == {"/schedule"}
    assert declared.bot_events >= REQUIRED_BOT_EVENTS
    assert declared.interactivity is True


def test_schedule_command_escapes_mentions_and_hints_usage() -> None:
    """/schedule escapes @mentions (so we receive user ids) and shows a usage hint."""
    [command] = load_manifest()["features"]["slash_commands"]
    assert command["should_escape"] is True
    assert "@" in command["usage_hint"] and command["description"]


def test_app_home_and_bot_user_are_set_up() -> None:
    """The Home tab is on and people can write to the bot in its Messages tab."""
    features = load_manifest()["features"]
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": False,
    }
    assert features["bot_user"] == {"display_name": "Slotbot", "always_online": True}


def test_request_urls_all_point_at_bolts_one_endpoint() -> None:
    """Command, events and interactivity share /slack/events, as Bolt serves them."""
    manifest = load_manifest()
    urls = {
        manifest["features"]["slash_commands"][0]["url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
    }
    assert urls == {"https://your-host.example.com/slack/events"}
    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://your-host.example.com/slack/oauth_redirect"
    ]


def test_settings_choose_socket_mode_without_rotation() -> None:
    """Socket Mode is on; org-wide deploy and token rotation are off."""
    settings = load_manifest()["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_manifest_declarations_reads_another_manifest(tmp_path: Path) -> None:
    """manifest_declarations works on any manifest file, e.g. one without interactivity."""
    other = tmp_path / "manifest.yml"
    other.write_text(
        "display_information: {name: X}\n"
        "features: {slash_commands: [{command: /a, description: a},\n"
        "                            {command: /b, description: b}]}\n"
        "settings: {event_subscriptions: {bot_events: [message.im]}}\n",
        encoding="utf-8",
    )
    assert manifest_declarations(other) == ManifestDeclarations(
        commands=frozenset({"/a", "/b"}), bot_events=frozenset({"message.im"}), interactivity=False
    )

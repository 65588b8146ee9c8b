"""Independent .ics validation with libical (GObject introspection) for the invite tests.

Run as a script with the *system* Python (``/usr/bin/python3 tests/ical_check.py < x.ics``): it
prints a JSON report. Imported by tests, ``libical_report(data)`` runs it in a subprocess.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = os.environ.get("SLOTBOT_LIBICAL_PYTHON", "/usr/bin/python3")
_PROBE = "import gi; gi.require_version('ICalGLib', '3.0'); from gi.repository import ICalGLib"


# --- the script side (system Python, libical) -------------------------------------------------


def _line_errors(data: bytes) -> list[str]:
    """Content-line rules libical forgives: CRLF endings and folding at 75 octets."""
    errors = []
    if not data.endswith(b"\r\n"):
        errors.append("file does not end with CRLF")
    for number, line in enumerate(data.split(b"\r\n")[:-1], start=1):
        if b"\n" in line or b"\r" in line:
            errors.append(f"line {number}: bare LF or CR")
        if len(line) > 75:
            errors.append(f"line {number}: {len(line)} octets (more than 75)")
    return errors


def _walk(component: Any) -> Any:
    yield component
    child = component.get_first_component(_ical().ComponentKind.ANY_COMPONENT)
    while child is not None:
        yield from _walk(child)
        child = component.get_next_component(_ical().ComponentKind.ANY_COMPONENT)


def _ical() -> Any:
    import gi  # only the system Python has it

    gi.require_version("ICalGLib", "3.0")
    from gi.repository import ICalGLib

    return ICalGLib


def _lic_errors(root: Any) -> list[str]:
    ical = _ical()
    errors = []
    for component in _walk(root):
        prop = component.get_first_property(ical.PropertyKind.XLICERROR_PROPERTY)
        while prop is not None:
            kind = ical.Component.kind_to_string(component.isa())
            errors.append(f"{kind}: {prop.get_xlicerror()}")
            prop = component.get_next_property(ical.PropertyKind.XLICERROR_PROPERTY)
    return errors


def _utc_text(value: Any, ical: Any) -> str | None:
    if value is None or value.is_null_time():
        return None
    utc = value.convert_to_zone(ical.Timezone.get_utc_timezone())
    return str(utc.as_ical_string())


def _zoned_utc_text(root: Any, event: Any, ical: Any) -> str | None:
    """RECURRENCE-ID in UTC: libical's getter drops its TZID, so the zone is looked up here."""
    prop = event.get_first_property(ical.PropertyKind.RECURRENCEID_PROPERTY)
    if prop is None:
        return None
    return _property_utc_text(root, prop, prop.get_recurrenceid(), ical)


def _property_utc_text(root: Any, prop: Any, value: Any, ical: Any) -> str | None:
    tzid = prop.get_parameter_as_string("TZID")
    if tzid:
        zone = root.get_timezone(tzid)
        if zone is None:
            raise ValueError(f"RECURRENCE-ID names TZID {tzid} without a VTIMEZONE")
        value.set_timezone(zone)
    return _utc_text(value, ical)


def check(data: bytes) -> dict[str, Any]:
    """Parse ``data`` with libical and report what it found and every error it raised."""
    ical = _ical()
    errors = _line_errors(data)
    try:
        root = ical.Component.new_from_string(data.decode("utf-8"))
    except (TypeError, UnicodeDecodeError):  # libical returned NULL, or not UTF-8
        root = None
    if root is None or root.isa() != ical.ComponentKind.VCALENDAR_COMPONENT:
        return {"errors": [*errors, "not a VCALENDAR"], "events": []}
    method_prop = root.get_first_property(ical.PropertyKind.METHOD_PROPERTY)
    method = ical.Property.method_to_string(method_prop.get_method()) if method_prop else None
    # Adds X-LIC-ERROR properties for every iTIP restriction the METHOD imposes (RFC 5546).
    restrictions_ok = bool(root.check_restrictions())
    errors += _lic_errors(root)
    if not restrictions_ok and not any("X-LIC" in e or ":" in e for e in errors):
        errors.append("libical restriction check failed")
    events = []
    event = root.get_first_component(ical.ComponentKind.VEVENT_COMPONENT)
    while event is not None:
        attendees = []
        prop = event.get_first_property(ical.PropertyKind.ATTENDEE_PROPERTY)
        while prop is not None:
            attendees.append(prop.get_attendee())
            prop = event.get_next_property(ical.PropertyKind.ATTENDEE_PROPERTY)
        organizer = event.get_first_property(ical.PropertyKind.ORGANIZER_PROPERTY)
        rrule = event.get_first_property(ical.PropertyKind.RRULE_PROPERTY)
        exdates = []
        prop = event.get_first_property(ical.PropertyKind.EXDATE_PROPERTY)
        while prop is not None:
            exdates.append(_property_utc_text(root, prop, prop.get_exdate(), ical))
            prop = event.get_next_property(ical.PropertyKind.EXDATE_PROPERTY)
        events.append(
            {
                "uid": event.get_uid(),
                "sequence": event.get_sequence(),
                "summary": event.get_summary(),
                "description": event.get_description(),
                "status": ical.Property.status_to_string(event.get_status()),
                "dtstart": _utc_text(event.get_dtstart(), ical),
                "dtend": _utc_text(event.get_dtend(), ical),
                "organizer": organizer.get_organizer() if organizer else None,
                "attendees": attendees,
                "property_count": event.count_properties(ical.PropertyKind.ANY_PROPERTY),
                "recurrence_id": _zoned_utc_text(root, event, ical),
                "rrule": rrule.get_value_as_string() if rrule else None,
                "exdates": exdates,
            }
        )
        event = root.get_next_component(ical.ComponentKind.VEVENT_COMPONENT)
    report: dict[str, Any] = {"method": method, "events": events, "errors": errors}
    if len(events) == 1:
        report.update({k: events[0][k] for k in ("uid", "sequence", "summary", "dtstart")})
    return report


def main() -> None:
    """Read one .ics on stdin, print the JSON report; exit 1 if libical found errors."""
    expect_many = "--feed" in sys.argv[1:]
    report = check(sys.stdin.buffer.read())
    # A series may travel with its occurrences moved on their own (same UID, RECURRENCE-ID).
    series = len({e["uid"] for e in report["events"]}) == 1 and report["events"][0]["rrule"]
    if not expect_many and len(report["events"]) != 1 and not series:
        report["errors"].append(f"expected one VEVENT, found {len(report['events'])}")
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    sys.exit(1 if report["errors"] else 0)


# --- the pytest side (the venv's Python) ------------------------------------------------------


@functools.cache
def _libical_missing() -> str | None:
    """Why libical cannot be used here, or ``None`` when it can."""
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60
        )
    except OSError as error:
        return f"{SYSTEM_PYTHON} cannot run: {error}"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{SYSTEM_PYTHON} cannot import libical's ICalGLib ({last})"
    return None


def libical_report(data: bytes, *, feed: bool = False) -> dict[str, Any]:
    """libical's JSON report on ``data``; skips (fails under CI) when libical is missing."""
    import pytest

    missing = _libical_missing()
    if missing is not None:
        message = (
            f"libical validation unavailable: {missing}. "
            "Install python3-gi and gir1.2-ical-3.0 (Debian) or set SLOTBOT_LIBICAL_PYTHON."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    completed = subprocess.run(
        [SYSTEM_PYTHON, str(Path(__file__).resolve()), *(["--feed"] if feed else [])],
        input=data,
        capture_output=True,
        timeout=60,
    )
    if not completed.stdout:
        pytest.fail(f"ical_check.py crashed: {completed.stderr.decode(errors='replace')}")
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


if __name__ == "__main__":
    main()

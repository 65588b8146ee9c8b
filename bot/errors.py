"""One error tree for Slotbot; every error carries the message a user should see.

SlotbotError                 anything we can explain to a person
├── RequestError             the request text could not be understood or is impossible
├── NoSlotsError             nothing fits; ``reasons`` say why, in people's words
├── OfferError               the offer is unknown, expired, or not yours
├── BookingError             the booking could not be made or changed
│   └── SlotTakenError       someone else just took that time
├── PermissionDeniedError    you may not act on this
└── CalendarError            the calendar provider refused or failed
"""

from __future__ import annotations


class SlotbotError(Exception):
    """Base of every error Slotbot can explain; ``user_message`` is safe to show."""

    def __init__(self, user_message: str, *, hint: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.hint = hint


class RequestError(SlotbotError):
    """The request text could not be read, or asks for something impossible."""


class NoSlotsError(SlotbotError):
    """No free slot fits; ``reasons`` are short sentences a user understands."""

    def __init__(self, user_message: str, reasons: tuple[str, ...] = (), **kw: str | None) -> None:
        super().__init__(user_message, **kw)
        self.reasons = reasons


class OfferError(SlotbotError):
    """The offer behind a button is unknown, expired, or belongs to someone else."""


class BookingError(SlotbotError):
    """A booking could not be made, moved or cancelled."""


class SlotTakenError(BookingError):
    """The chosen time was taken between the offer and the click."""


class PermissionDeniedError(SlotbotError):
    """The person may not act on this offer or booking."""


class CalendarError(SlotbotError):
    """The calendar provider failed in a way we can explain."""

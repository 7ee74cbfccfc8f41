"""Who the documents come from: the clinic's name, numbers and time zone."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ClinicInfo:
    """The clinic as it appears on handouts, summaries and fax cover pages.

    ``phone`` and ``fax`` are printed exactly as given (the clinic chooses how
    its numbers look); ``timezone`` is an IANA name such as "America/Chicago"
    and is the zone every date on the documents is shown in.
    """

    name: str
    phone: str
    fax: str
    timezone: str = "America/Chicago"
    locale: str = "en_US"  # dates, numbers and units on the documents
    large_print: bool = False  # the patient handout in 16 pt instead of 14 pt

    @classmethod
    def from_settings(cls, settings) -> ClinicInfo:
        """Build from ``refflow.config.Settings`` (clinic_* and handout_large_print)."""
        return cls(
            name=settings.clinic_name,
            phone=settings.clinic_phone,
            fax=settings.clinic_fax,
            timezone=settings.clinic_timezone,
            locale=settings.clinic_locale,
            large_print=settings.handout_large_print,
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

"""The patient's texts in their language: gettext catalogues through Babel.

The handout and the patient's email mark their words with ``_()`` /
``ngettext()``; the catalogues are ``locale/<lang>/LC_MESSAGES/refflow.po``
(compiled to ``.mo`` next to it, shipped in the package). ``babel.cfg`` at the
repository root tells ``pybabel extract`` where to look (see docs/plugins.md).
The exercise catalogue's texts come translated in the plan itself (each
exercise's ``translations``, made by ``planning/translations.py``); the
plan's own sentences (stages, precautions, "stop and call") are looked up
here (``documents/plan_text.py``: msgids and patterns).

Which language a document is in is decided once, by the plan engine, and
recorded in the plan (``plan["language"]``); the renderers only follow it
(``with using(language): ...``). A translation's reviewed mark is the .po
header ``X-Refflow-Reviewed: no|yes``.
"""

from __future__ import annotations

import contextlib
import gettext as _gettext
import re
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "refflow"
SOURCE_LANGUAGE = "en"

_current: ContextVar[_gettext.NullTranslations] = ContextVar(
    "refflow_documents_translations", default=_gettext.NullTranslations())
_language: ContextVar[str] = ContextVar("refflow_documents_language", default=SOURCE_LANGUAGE)


@lru_cache(maxsize=8)
def catalog(language: str) -> _gettext.NullTranslations:
    """The compiled catalogue for ``language`` (English: none, the msgids are English)."""
    if language == SOURCE_LANGUAGE or not language.isalpha():
        return _gettext.NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], DOMAIN)


def languages() -> list[str]:
    """The languages the patient's texts can be in: English and each shipped catalogue."""
    shipped = sorted(mo.parent.parent.name for mo in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return [SOURCE_LANGUAGE, *(lang for lang in shipped if lang != SOURCE_LANGUAGE)]


def available(language: str) -> bool:
    """Whether documents can be written in ``language`` (a compiled catalogue ships)."""
    return language == SOURCE_LANGUAGE or isinstance(catalog(language), Translations)


@lru_cache(maxsize=8)
def reviewed(language: str) -> bool:
    """The catalogue's reviewed mark: the ``X-Refflow-Reviewed: yes|no`` header
    of its .po (read from the .po, which ships with the .mo: compilers drop
    headers they do not know). No mark means unreviewed."""
    if language == SOURCE_LANGUAGE:
        return True
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not language.isalpha() or not po.is_file():
        return False
    mark = re.search(r'^"X-Refflow-Reviewed:\s*(\w+)', po.read_text("utf-8"), re.MULTILINE)
    return bool(mark) and mark.group(1).lower() == "yes"


@contextlib.contextmanager
def using(language: str):
    """Render in ``language`` inside the block (English if it has no catalogue)."""
    language = language if available(language) else SOURCE_LANGUAGE
    token, lang_token = _current.set(catalog(language)), _language.set(language)
    try:
        yield language
    finally:
        _current.reset(token)
        _language.reset(lang_token)


def current_language() -> str:
    return _language.get()


def _(message: str) -> str:
    return _current.get().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.get().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a message for extraction; translated later with ``_()``."""
    return message


def locale_for(clinic_locale: str) -> str:
    """The documents' Babel locale: the language in use in the clinic's
    territory ("es" in an en_US clinic → "es_US")."""
    language = current_language()
    clinic = Locale.parse(clinic_locale or "en_US")
    if language == clinic.language:
        return str(clinic)
    candidate = f"{language}_{clinic.territory}" if clinic.territory else language
    try:
        return str(Locale.parse(candidate))
    except Exception:  # noqa: BLE001 - an unknown combination: the language alone
        return language


# -- the words the handout builds from numbers ---------------------------------

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def day_name(day: str, clinic_locale: str, width: str = "wide") -> str:
    """An English day name from the plan ("Monday") in the current language:
    "lunes" / "lun." (Babel's CLDR names)."""
    if day not in DAY_NAMES:
        return day
    if current_language() == SOURCE_LANGUAGE:
        return day if width == "wide" else day[:3]
    names = Locale.parse(locale_for(clinic_locale)).days["format"][width]
    return names[DAY_NAMES.index(day)]


def and_list(words: list[str]) -> str:
    """"a", "a and b", "a, b and c" (Spanish "a, b y c")."""
    if len(words) == 1:
        return words[0]
    return _("{items} and {last}").format(items=", ".join(words[:-1]), last=words[-1])


def dose_words(dose: dict | None, per_side: bool | None = None) -> str | None:
    """The dose in the current language from its numbers, or None when its
    text is someone's own words (``text_edited``: a clinician wrote it, see
    ``planning/revisions.py``): then the caller shows it as written. A dose
    without the mark (every plan stored before it existed) has the engine's
    words, made from these numbers."""
    if not dose:
        return _("as your therapist showed you")
    if dose.get("text_edited") is True:
        return None
    text = str(dose.get("text") or "")
    sets, reps, hold, minutes = (dose.get(k) for k in ("sets", "reps", "hold_seconds", "minutes"))
    side = " each side" in text if per_side is None else per_side
    bouts = text.endswith(", in bouts of 10 minutes or more")
    parts = []
    side_words = " " + _("each side") if side else ""
    if sets and reps:
        parts.append(ngettext("{sets} set of {reps}", "{sets} sets of {reps}", sets)
                     .format(sets=sets, reps=reps) + side_words)
    elif reps:
        parts.append(_("{reps} times").format(reps=reps) + side_words)
    elif sets and hold:
        parts.append(ngettext("{n} time", "{n} times", sets).format(n=sets) + side_words)
    if hold:
        parts.append(ngettext("hold {n} second", "hold {n} seconds", hold).format(n=hold))
    if minutes:
        parts.append(ngettext("{n} minute", "{n} minutes", minutes).format(n=minutes))
    if not parts:
        return _("as your therapist shows you")
    words = ", ".join(parts)
    if bouts:
        words += _(", in bouts of 10 minutes or more")
    return words


def days_words(days: int | None) -> str:
    if not days:
        return _("as your therapist advises")
    if days >= 7:
        return _("every day")
    return ngettext("{n} day a week", "{n} days a week", days).format(n=days)


def weeks_words(week_from: int | None, week_to: int | None) -> str:
    if week_from is None:
        return ""
    if week_to is None:
        return _("Week {n} onwards").format(n=week_from)
    if week_to == week_from:
        return _("Week {n}").format(n=week_from)
    return _("Weeks {a}–{b}").format(a=week_from, b=week_to)

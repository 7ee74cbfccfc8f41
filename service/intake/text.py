"""Text a referral may carry: what can be printed on a fax cover, put in an
email or shown on a page. The one home for the control-character rules, used
by the referral schema (and by anything else that takes a name).

One-line text (names, ids, list entries) has no control characters at all:
no CR/LF (a header or a cover line could be split), no tab, no escape
sequences, no C1 controls, no Unicode line or paragraph separators. Free text
(notes, histories) keeps its lines and tabs but no other control character.
Messages name the rule, never the value.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, LINE SEPARATOR, PARAGRAPH SEPARATOR
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# the same, less tab, LF and CR
_NOT_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def one_line(value: str) -> str:
    """``value`` unchanged; ``ValueError`` if it holds a control character or a line break."""
    if _NOT_ONE_LINE.search(value):
        raise ValueError("must be one line without control characters "
                         "(no line breaks, tabs or escape codes)")
    return value


def free_text(value: str) -> str:
    """``value`` unchanged; ``ValueError`` if it holds a control character other
    than tab, line feed or carriage return."""
    if _NOT_FREE_TEXT.search(value):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return value

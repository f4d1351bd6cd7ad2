"""How external systems' ids are compared: the one normalisation every lookup uses.

Odyssee writes the same GUID in lower case in one table and upper case in
another (and in foreign keys); telematics senders pad device ids. Ids are
stored and looked up in their normal form, so ``ABC…`` and ``abc…`` are one id.
"""

import re

GUID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def is_guid(value):
    return isinstance(value, str) and bool(GUID_PATTERN.match(value.strip()))


def normalize(external_id):
    """The normal form of an id: surrounding blanks dropped, GUIDs in lower case.

    Other ids keep their case: device ids such as ``CAT-320-0001`` are
    case-sensitive at some vendors. ``None`` and ``""`` normalise to ``""``.
    """
    if external_id is None:
        return ""
    value = str(external_id).strip()
    return value.lower() if GUID_PATTERN.match(value) else value

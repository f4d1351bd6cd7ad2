"""The MQTT topic layout of telematics ingestion.

    <prefix>/<source>/<device>/readings   {"readings": [...]}, as POST /telematics/v1/readings
    <prefix>/<source>/<device>/alerts     one alert or {"alerts": [...]}, as POST .../alerts
    <prefix>/<source>/<device>/iso15143   an ISO 15143-3 fleet snapshot, as POST .../iso15143/fleet
    <prefix>/<source>/<device>/status     retained "online" / "offline" (or {"online": bool}),
                                          usually the gateway's last will

``prefix`` defaults to ``fleet/v1`` and may hold several levels; ``source`` is the
code of the telematics source, ``device`` the device ID its external system uses.
The data topics are consumed through a shared subscription, so that several
consumers split them; ``status`` is subscribed without one, because the MQTT 5
specification has a broker send no retained message to a member of a shared
subscription, and every consumer must apply a gateway's status. (Mosquitto 2.0
does send retained messages to shared subscriptions: a retained data message
reaches the ledger marked as a retained delivery, stale state that raises no alert.)
"""

import json

DEFAULT_PREFIX = "fleet/v1"
DEFAULT_SHARE_GROUP = "odoo-ingest"
# Topic kind -> the HTTP endpoint whose body it carries.
DATA_KINDS = {"readings": "readings", "alerts": "alerts", "iso15143": "iso15143"}
STATUS = "status"
KINDS = (*DATA_KINDS, STATUS)
_WILDCARDS = set("+#")


class TopicError(ValueError):
    """A topic (or a prefix, source code, group) that breaks the layout; says why."""


def check_level(value, name):
    """Raise ``TopicError`` unless ``value`` is one non-empty topic level without wildcards."""
    if not isinstance(value, str) or not value:
        raise TopicError(f"{name} must not be empty")
    if "/" in value or _WILDCARDS & set(value) or "\x00" in value or value.startswith("$"):
        raise TopicError(f"{name} {value!r} must be one topic level without / + # $ or NUL")
    return value


def check_prefix(prefix):
    """The prefix without its surrounding slashes; every level must be a plain level."""
    cleaned = (prefix or "").strip().strip("/")
    if not cleaned:
        raise TopicError("the topic prefix must not be empty")
    for level in cleaned.split("/"):
        check_level(level, "every level of the topic prefix")
    return cleaned


def data_filters(prefix, source, share_group=None):
    """The subscription filters of a source's data topics, shared when ``share_group`` is set."""
    base = f"{check_prefix(prefix)}/{check_level(source, 'the source code')}/+"
    share = f"$share/{check_level(share_group, 'the share group')}/" if share_group else ""
    return [f"{share}{base}/{kind}" for kind in DATA_KINDS]


def status_filter(prefix, source):
    return f"{check_prefix(prefix)}/{check_level(source, 'the source code')}/+/{STATUS}"


def topic(prefix, source, device, kind):
    """The topic a gateway publishes ``kind`` of ``device`` on."""
    if kind not in KINDS:
        raise TopicError(f"kind must be one of {', '.join(KINDS)}")
    return f"{check_prefix(prefix)}/{check_level(source, 'the source code')}/" + (
        f"{check_level(device, 'the device')}/{kind}"
    )


def parse(prefix, source, topic_name):
    """``(device, kind)`` of a topic of this source; raises ``TopicError`` saying why not."""
    head = f"{check_prefix(prefix)}/{source}/"
    if not isinstance(topic_name, str) or not topic_name.startswith(head):
        raise TopicError(f"topic {topic_name!r} is not under {head}")
    rest = topic_name[len(head) :].split("/")
    if len(rest) != 2:
        raise TopicError(f"topic {topic_name!r} must end with <device>/<kind>")
    device, kind = rest
    check_level(device, "the device of the topic")
    if kind not in KINDS:
        raise TopicError(f"topic {topic_name!r} ends with {kind!r}, not one of {', '.join(KINDS)}")
    return device, kind


def parse_status(payload):
    """True (online), False (offline), or None when ``payload`` says neither.

    Accepts ``online``/``offline`` (any case, surrounding blanks ignored),
    ``1``/``0``, ``true``/``false``, and ``{"online": bool}`` (Sparkplug's STATE shape).
    """
    try:
        text = payload.decode("utf-8").strip()
    except (UnicodeDecodeError, AttributeError):
        return None
    words = {"online": True, "offline": False, "1": True, "0": False}
    words |= {"true": True, "false": False}
    if text.lower() in words:
        return words[text.lower()]
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and isinstance(document.get("online"), bool):
        return document["online"]
    return None

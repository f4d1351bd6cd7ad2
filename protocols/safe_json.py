"""JSON as the door of the telematics API accepts it.

Python's ``json.loads`` accepts what the rest of the chain refuses: ``NaN`` and
``Infinity`` (not JSON for other clients), ``1e400`` (read as infinity), integers
of thousands of digits, ``\\u0000`` and unpaired surrogates (PostgreSQL stores
neither in ``jsonb`` nor ``text``), and nesting deep enough to exhaust the
recursion limit of whatever walks the document next.

* ``loads`` refuses what is not JSON (``NaN``, ``Infinity``, nesting past the
  parser's recursion limit) as ``MalformedJSON``;
* ``find_hostile`` names the first value that is valid JSON but that no later
  step may see: nesting deeper than ``MAX_DEPTH``, a number out of the double
  range or of more than ``MAX_INTEGER_DIGITS`` digits, a string (or key) holding
  NUL or an unpaired surrogate;
* ``storable_raw_body`` keeps any body in a form PostgreSQL accepts.
"""

import base64
import json
import re

MAX_DEPTH = 32
MAX_INTEGER_DIGITS = 100
_INTEGER_BOUND = 10**MAX_INTEGER_DIGITS

# Without one of these escapes no string of a UTF-8 body can hold NUL or a
# surrogate: raw NUL is refused by the strict parser, raw surrogates are not UTF-8.
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89abcdefABCDEF])")


class MalformedJSON(ValueError):
    """The body is not JSON; the message says why."""


def _constant(name):
    raise MalformedJSON(f"{name} is not a JSON number")


def loads(body):
    """Parse ``body`` (bytes); raises ``MalformedJSON`` saying why it is refused."""
    try:
        return json.loads(body, parse_constant=_constant)
    except MalformedJSON:
        raise
    except RecursionError:
        raise MalformedJSON(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedJSON(str(exc)) from None


def _number_problem(value):
    if type(value) is float:
        if value - value:  # inf - inf is nan; any finite x - x is 0
            return "is out of range (a JSON number must fit a double)"
    elif type(value) is int and not -_INTEGER_BOUND < value < _INTEGER_BOUND:
        return f"is out of range (integers have at most {MAX_INTEGER_DIGITS} digits)"
    return None


def _string_problem(text):
    if "\x00" in text:
        return "must not contain U+0000 (NUL)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain an unpaired surrogate (U+D800 to U+DFFF)"
    return None


def _suspect(document):
    """Whether a container nests too deep or holds a hostile number; no paths, so fast."""
    if type(document) is not dict and type(document) is not list:
        return _number_problem(document) is not None
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        for child in value.values() if type(value) is dict else value:
            kind = type(child)
            if kind is float:
                if child - child:
                    return True
            elif kind is int:
                if not -_INTEGER_BOUND < child < _INTEGER_BOUND:
                    return True
            elif kind is dict or kind is list:
                if depth >= MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _printable(field):
    return field.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def find_hostile(body, document):
    """``(field, message)`` of the first value no later step may see, else None.

    ``body`` is the raw request: strings are only inspected when it holds a
    ``\\u0000`` or surrogate escape, and paths are only built once the fast
    pass found something.
    """
    strings = bool(_SUSPECT_ESCAPE.search(body))
    if not strings and not _suspect(document):
        return None
    stack = [(document, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        field = _printable(path) or "$"
        if isinstance(value, str):
            message = _string_problem(value) if strings else None
        elif isinstance(value, (dict, list)):
            message = f"nests deeper than {MAX_DEPTH} levels" if depth > MAX_DEPTH else None
            if not message and isinstance(value, dict):
                for key, child in value.items():
                    child_path = f"{path}.{key}" if path else str(key)
                    key_message = _string_problem(key) if strings else None
                    if key_message:
                        return _printable(child_path), "key " + key_message
                    stack.append((child, child_path, depth + 1))
            elif not message:
                stack.extend(
                    (child, f"{path}[{index}]", depth + 1) for index, child in enumerate(value)
                )
        elif isinstance(value, bool):
            message = None
        else:
            message = _number_problem(value)
        if message:
            return field, message
    return None


def storable_raw_body(body):
    """What a rejected request keeps of its body: its text, plus base64 when the text is lossy."""
    text = body.decode("utf-8", "replace")
    stored = {"raw_body": text.replace("\x00", "\ufffd")}
    if stored["raw_body"] != text or "\ufffd" in text:
        stored["raw_body_base64"] = base64.b64encode(body).decode("ascii")
    return stored

"""The request schemas of ``docs/openapi/telematics-v1.json``, ready to validate bodies.

The OpenAPI document is the one statement of what the API accepts: its
component schemas (JSON Schema Draft 2020-12, as OpenAPI 3.1 uses) are what
validates a request. Each ``Schema`` holds two validators built once, at import:

* ``jsonschema``'s ``Draft202012Validator``, which names every failure; and
* a predicate compiled from the same schema for the keywords this API uses,
  answering only valid or not. jsonschema costs about 150 µs for one reading,
  which is more than the whole accept path of a reading; the compiled predicate
  costs a few µs, so a batch of 5,000 valid readings is checked in milliseconds
  and jsonschema only runs for the items that fail, to say why. A schema using a
  keyword the compiler does not know is validated by jsonschema alone, and the
  tests check that both validators agree on generated and hostile values.

Failures are ``{"field", "message"}`` with ``field`` the JSON path relative to
the validated value (``readings.engine_hours``, ``[2].at``, ``$`` for the value
itself); a schema's ``x-errors`` (keyword -> message) words the message of
keywords whose default wording would say little (``anyOf``, ``pattern``...).
"""

import copy
import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi" / "telematics-v1.json"
DOCUMENT = json.loads(OPENAPI_PATH.read_text())
_BASE_URI = "urn:construction-asset-sync:telematics-v1"
_REGISTRY = Registry().with_resource(
    _BASE_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
_ANNOTATIONS = {
    "$comment",
    "default",
    "deprecated",
    "description",
    "example",
    "examples",
    "format",  # an annotation in Draft 2020-12 unless a format vocabulary is asserted
    "readOnly",
    "title",
    "writeOnly",
}
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_STRING = ("minLength", "maxLength", "pattern")
_OBJECT = (
    "required",
    "properties",
    "additionalProperties",
    "dependentRequired",
    "minProperties",
    "maxProperties",
    "propertyNames",
)
_ARRAY = ("items", "minItems", "maxItems")
_APPLICATORS = ("anyOf", "allOf", "oneOf", "not", "if", "then", "else", "enum", "const")
_KNOWN = {"$ref", "type", *_NUMERIC, *_STRING, *_OBJECT, *_ARRAY, *_APPLICATORS}
_NONE = type(None)
_TYPES = {
    "null": (_NONE,),
    "boolean": (bool,),
    "integer": (int, float),  # a float is an integer when it has no fraction (1.0)
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}
_TYPE_NAMES = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "a JSON object",
}


class Unsupported(Exception):
    """The schema uses a keyword the compiler leaves to jsonschema."""


def resolve(pointer):
    """The part of the OpenAPI document at a ``#/...`` JSON pointer."""
    if not pointer.startswith("#/"):
        raise Unsupported(f"only local references are compiled, not {pointer}")
    node = DOCUMENT
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _true(_value):
    return True


def _all(checks):
    checks = [check for check in checks if check is not _true]
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]

    def check_all(value):
        # A loop, not all(): no generator to create on this hot path.
        for check in checks:  # noqa: SIM110
            if not check(value):
                return False
        return True

    return check_all


def _number_check(schema, integer):
    low, high = schema.get("minimum"), schema.get("maximum")
    low_x, high_x = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")

    def check_number(value):
        if integer and type(value) is float and not value.is_integer():
            return False
        if low is not None and value < low:
            return False
        if high is not None and value > high:
            return False
        if low_x is not None and value <= low_x:
            return False
        return high_x is None or value < high_x

    if low is not None and high is not None and low_x is None and high_x is None:
        if integer:
            return lambda value: (type(value) is int or value.is_integer()) and low <= value <= high
        return lambda value: low <= value <= high
    if not integer and all(schema.get(key) is None for key in _NUMERIC):
        return _true
    return check_number


def _string_check(schema):
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    search = re.compile(schema["pattern"]).search if "pattern" in schema else None
    if search is None and not low and high is None:
        return _true

    def check_string(value):
        size = len(value)
        if size < low or (high is not None and size > high):
            return False
        return search is None or search(value) is not None

    return check_string


def _keywords(schema):
    return {key for key in schema if not key.startswith("x-")} - _ANNOTATIONS


def _leaf(schema):
    """The schema of a number or a string (maybe null) with plain bounds, else None."""
    while "$ref" in schema and not _keywords(schema) - {"$ref"}:
        schema = resolve(schema["$ref"])
    keys = _keywords(schema)
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    if types - {"null"} == {"number"} and keys <= {"type", "minimum", "maximum"}:
        return schema
    if types - {"null"} == {"string"} and keys <= {"type", "minLength", "maxLength", "pattern"}:
        return schema
    return None


def _leaf_expression(schema, name, namespace):
    """Python source testing ``x`` against a leaf schema (see ``_leaf``)."""
    declared = schema["type"]
    types = {declared} if isinstance(declared, str) else set(declared)
    if "number" in types:
        test = "(type(x) is float or type(x) is int)"
        for keyword, operator in (("minimum", ">="), ("maximum", "<=")):
            if keyword in schema:
                namespace[f"{name}_{keyword}"] = schema[keyword]
                test += f" and x {operator} {name}_{keyword}"
    else:
        test = "type(x) is str"
        if schema.get("minLength"):
            test += f" and len(x) >= {int(schema['minLength'])}"
        if "maxLength" in schema:
            test += f" and len(x) <= {int(schema['maxLength'])}"
        if "pattern" in schema:
            namespace[f"{name}_search"] = re.compile(schema["pattern"]).search
            test += f" and {name}_search(x) is not None"
    return f"(({test}) or x is None)" if "null" in types else f"({test})"


def _object_check(schema, compile_):
    """One generated function per object schema: the common leaves are tested inline.

    Function calls dominate the cost of a closure per keyword; the Reading
    schema's check is about three times faster generated than composed.
    """
    required = list(schema.get("required", ()))
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties", True)
    dependent = schema.get("dependentRequired", {})
    low, high = schema.get("minProperties", 0), schema.get("maxProperties")
    names = schema.get("propertyNames", True)
    if (
        not (required or properties or additional is not True or dependent or low)
        and high is None
        and names is True
    ):
        return _true
    namespace = {"MISSING": object(), "KNOWN": frozenset(properties)}
    lines = ["def check_object(value):"]
    if additional is False or any(key not in properties for key in required):
        lines.append("    present = 0")
    counting = additional is False
    for index, (key, sub) in enumerate(properties.items()):
        name = f"p{index}"
        leaf = _leaf(sub) if isinstance(sub, dict) else None
        if leaf is not None:
            test = _leaf_expression(leaf, name, namespace)
        else:
            namespace[name] = compile_(sub)
            test = f"{name}(x)"
        lines.append(f"    x = value.get({key!r}, MISSING)")
        if key in required:
            lines.append("    if x is MISSING:")
            lines.append("        return False")
            lines.append(f"    if not {test}:")
            lines.append("        return False")
            if counting:
                lines.append("    present += 1")
        else:
            lines.append("    if x is not MISSING:")
            lines.append(f"        if not {test}:")
            lines.append("            return False")
            if counting:
                lines.append("        present += 1")
    for key in required:
        if key not in properties:
            lines.append(f"    if {key!r} not in value:")
            lines.append("        return False")
    if counting:
        lines.append("    if present != len(value):")
        lines.append("        return False")
    elif additional is not True:
        namespace["additional"] = compile_(additional)
        lines.append("    for key, x in value.items():")
        lines.append("        if key not in KNOWN and not additional(x):")
        lines.append("            return False")
    for key, needed in dependent.items():
        for other in needed:
            lines.append(f"    if {key!r} in value and {other!r} not in value:")
            lines.append("        return False")
    if names is not True:
        namespace["names"] = compile_(names)
        lines.append("    for key in value:")
        lines.append("        if not names(key):")
        lines.append("            return False")
    if low:
        lines.append(f"    if len(value) < {int(low)}:")
        lines.append("        return False")
    if high is not None:
        lines.append(f"    if len(value) > {int(high)}:")
        lines.append("        return False")
    lines.append("    return True")
    exec("\n".join(lines), namespace)  # source built from the schema only
    return namespace["check_object"]


def _array_check(schema, compile_):
    items = compile_(schema["items"]) if "items" in schema else _true
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    if items is _true and not low and high is None:
        return _true

    def check_array(value):
        if len(value) < low or (high is not None and len(value) > high):
            return False
        if items is not _true:
            for item in value:
                if not items(item):
                    return False
        return True

    return check_array


def _specialised(by_type):
    """One closure for the common leaves (a number, a string, either or null): no lookup."""
    kinds = set(by_type) - {_NONE}
    nullable = _NONE in by_type
    if kinds == {int, float} and by_type[int] is by_type[float]:
        number = by_type[int]
        if number is _true:
            return lambda value: (
                (type(value) is float or type(value) is int) or (nullable and value is None)
            )
        return lambda value: (
            number(value)
            if type(value) is float or type(value) is int
            else nullable and value is None
        )
    if kinds == {str}:
        string = by_type[str]
        return lambda value: string(value) if type(value) is str else nullable and value is None
    return None


class _Compiler:
    def __init__(self):
        self.references = []

    def compile(self, schema):
        if schema is True or schema == {}:
            return _true
        if schema is False:
            return lambda _value: False
        unknown = {key for key in schema if not key.startswith("x-")} - _KNOWN - _ANNOTATIONS
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        checks = []
        if "$ref" in schema:
            reference = schema["$ref"]
            if reference in self.references:
                raise Unsupported(f"recursive reference {reference}")
            self.references.append(reference)
            checks.append(self.compile(resolve(reference)))
            self.references.pop()
        checks.append(self._typed(schema))
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            if not all(isinstance(value, str) for value in values):
                raise Unsupported("enum or const of other values than strings")
            allowed = frozenset(values)
            checks.append(lambda value: type(value) is str and value in allowed)
        if "allOf" in schema:
            checks.extend(self.compile(sub) for sub in schema["allOf"])
        if "anyOf" in schema:
            options = [self.compile(sub) for sub in schema["anyOf"]]

            def check_any(value):
                for option in options:  # noqa: SIM110 (no generator on the hot path)
                    if option(value):
                        return True
                return False

            checks.append(check_any)
        if "oneOf" in schema:
            options = [self.compile(sub) for sub in schema["oneOf"]]
            checks.append(lambda value: sum(1 for option in options if option(value)) == 1)
        if "not" in schema:
            negated = self.compile(schema["not"])
            checks.append(lambda value: not negated(value))
        if "if" in schema:
            condition = self.compile(schema["if"])
            then = self.compile(schema.get("then", True))
            otherwise = self.compile(schema.get("else", True))
            checks.append(lambda value: then(value) if condition(value) else otherwise(value))
        return _all(checks)

    def _typed(self, schema):
        """Type and type-specific keywords: one dict lookup on the value's Python type."""
        declared = schema.get("type")
        names = [declared] if isinstance(declared, str) else declared or list(_TYPES)
        integer_only = "integer" in names and "number" not in names
        by_type = {}
        for name in names:
            for python_type in _TYPES[name]:
                if name == "null" or name == "boolean":
                    by_type[python_type] = _true
                elif name in ("integer", "number"):
                    by_type[python_type] = _number_check(schema, integer_only)
                elif name == "string":
                    by_type[python_type] = _string_check(schema)
                elif name == "object":
                    by_type[python_type] = _object_check(schema, self.compile)
                else:
                    by_type[python_type] = _array_check(schema, self.compile)
        if declared is None and all(check is _true for check in by_type.values()):
            return _true
        specialised = _specialised(by_type)
        if specialised:
            return specialised
        lookup = by_type.get

        def check_type(value):
            check = lookup(type(value))
            return check is not None and check(value)

        return check_type


def _field(path):
    field = ""
    for part in path:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return field or "$"


def _join(prefix, field):
    if not prefix:
        return field
    if field == "$":
        return prefix
    return prefix + field if field.startswith("[") else f"{prefix}.{field}"


def _number(value):
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bounds_message(schema):
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f"must be between {_number(low)} and {_number(high)}"
    if low is not None:
        word = "at least" if "minimum" in schema else "above"
        return f"must be {word} {_number(low)}"
    word = "at most" if "maximum" in schema else "below"
    return f"must be {word} {_number(high)}"


def _type_message(types):
    types = [types] if isinstance(types, str) else list(types)
    shown = [name for name in types if name != "null"] or types
    return "must be " + " or ".join(_TYPE_NAMES[name] for name in shown)


def _messages(error):
    """``(path, message)`` pairs of one jsonschema error, in this API's words."""
    schema, keyword, value = error.schema, error.validator, error.validator_value
    path = list(error.absolute_path)
    instance = error.instance
    custom = (schema.get("x-errors") or {}).get(keyword) if isinstance(schema, dict) else None
    if keyword == "required":
        missing = [key for key in value if isinstance(instance, dict) and key not in instance]
        return [([*path, key], "is required") for key in missing]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = schema.get("properties", {})
        return [([*path, key], "is not a known field") for key in instance if key not in known]
    if keyword == "dependentRequired" and isinstance(instance, dict):
        present = [
            key
            for key, needed in value.items()
            if key in instance and any(other not in instance for other in needed)
        ]
        message = custom or "needs {}".format(", ".join(value[present[0]]))
        return [([*path, present[0]], message)]
    if custom:
        return [(path, custom)]
    if keyword == "type":
        return [(path, _type_message(value))]
    if keyword in _NUMERIC:
        return [(path, _bounds_message(schema))]
    if keyword == "enum":
        return [(path, "must be one of {}".format(", ".join(map(str, value))))]
    if keyword == "const":
        return [(path, f"must be {value}")]
    if keyword == "minLength":
        return [
            (
                path,
                "must be a non-empty string"
                if value == 1
                else f"must be at least {value} characters",
            )
        ]
    if keyword == "maxLength":
        return [(path, f"must be at most {value} characters")]
    if keyword == "pattern":
        return [(path, f"must match {value}")]
    if keyword == "minItems":
        return [
            (
                path,
                "must be a non-empty array" if value == 1 else f"must hold at least {value} items",
            )
        ]
    if keyword == "maxItems":
        return [(path, f"holds {len(instance)} items; at most {value} per request")]
    if keyword in ("minProperties", "maxProperties"):
        word = "at least" if keyword == "minProperties" else "at most"
        return [(path, f"must have {word} {value} properties")]
    if keyword == "false":
        return [(path, "is not allowed")]
    return [(path, f"does not satisfy {keyword}")]


class Schema:
    """One schema of the document (a ``#/...`` pointer), with both validators."""

    def __init__(self, pointer, schema=None):
        self.pointer = pointer
        self.schema = schema if schema is not None else resolve(pointer)
        root = {"$ref": f"{_BASE_URI}{pointer}"} if schema is None else schema
        self.validator = Draft202012Validator(root, registry=_REGISTRY)
        try:
            self.is_valid = _Compiler().compile(self.schema)
            self.compiled = True
        except Unsupported:
            self.is_valid = self.validator.is_valid
            self.compiled = False

    def errors(self, value, prefix=""):
        """Every failure of ``value``: ``[{"field", "message"}]`` sorted by field, no repeats.

        An ``anyOf`` that fails only because of a value already reported (a
        reading whose one value is invalid also carries no valid value) is left out.
        """
        found, alternatives = {}, []
        for error in self.validator.iter_errors(value):
            for path, message in _messages(error):
                entry = (_join(prefix, _field(path)), message)
                if error.validator == "anyOf":
                    alternatives.append((list(error.absolute_path), entry))
                else:
                    found.setdefault(entry, list(error.absolute_path))
        for path, entry in alternatives:
            if not any(inner[: len(path)] == path for inner in found.values()):
                found.setdefault(entry, path)
        return [{"field": field, "message": message} for field, message in sorted(found)]


def schema(name):
    """A component schema by name, e.g. ``schema("Reading")``."""
    return Schema(f"#/components/schemas/{name}")


def envelope(name, items_property):
    """A batch schema without its items' schema: the structure only (size, type)."""
    structure = copy.deepcopy(resolve(f"#/components/schemas/{name}"))
    structure["properties"][items_property].pop("items", None)
    return Schema(f"#/components/schemas/{name}(envelope)", structure)


def property_schema(name, field):
    """The schema of one property of a component schema, e.g. ``("Reading", "lat")``."""
    return Schema(f"#/components/schemas/{name}/properties/{field}")

"""Turn Odoo's requirements.txt into pins that install from wheels.

Odoo 18.0 pins, for Python < 3.12, source distributions that no longer
build on current toolchains (``cbor2==5.4.2`` on 3.11, ``psycopg2`` without
libpq headers, ``python-ldap`` without OpenLDAP headers).  Upstream already
lists, for Python 3.12, pins that ship wheels for 3.10 to 3.12, so every
requirement is evaluated as if the interpreter were at least 3.12.

Usage: ``python odoo_requirements.py ODOO_SRC/requirements.txt > out.txt``
"""

import re
import sys

FLOOR_PYTHON = (3, 12)

# Needed only by optional addons this project does not install; they need
# system headers that a fresh machine lacks.
SKIPPED = {"python-ldap", "pypiwin32", "rl-renderpm"}
# Same API, prebuilt wheel.
REPLACED = {"psycopg2": "psycopg2-binary"}

_PYVER_RE = re.compile(r"python_version\s*(<=|>=|==|!=|<|>)\s*['\"]([\d.]+)['\"]")


def _version_tuple(text):
    return tuple(int(part) for part in text.split("."))


def _compare(left, operator, right):
    return {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
        "==": left == right,
        "!=": left != right,
    }[operator]


def marker_applies(marker, python_version, platform="linux"):
    """Evaluate the small marker language Odoo's requirements use."""
    for clause in re.split(r"\band\b", marker):
        clause = clause.strip()
        if not clause:
            continue
        version_match = _PYVER_RE.fullmatch(clause)
        if version_match:
            operator, wanted = version_match.groups()
            if not _compare(python_version, operator, _version_tuple(wanted)):
                return False
            continue
        platform_match = re.fullmatch(r"sys_platform\s*(==|!=)\s*['\"](\w+)['\"]", clause)
        if platform_match:
            operator, wanted = platform_match.groups()
            if (platform == wanted) != (operator == "=="):
                return False
            continue
        raise ValueError(f"unsupported requirement marker: {clause!r}")
    return True


def resolve(lines, python_version):
    effective = max(python_version, FLOOR_PYTHON)
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, marker = line.partition(";")
        if marker and not marker_applies(marker, effective):
            continue
        requirement = requirement.strip()
        name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0]
        key = name.lower()
        if key in SKIPPED:
            continue
        if key in REPLACED:
            requirement = REPLACED[key] + requirement[len(name) :]
            key = REPLACED[key]
        pins[key] = requirement
    return list(pins.values())


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        lines = handle.readlines()
    for requirement in resolve(lines, sys.version_info[:2]):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

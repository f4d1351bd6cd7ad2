"""Plain unittest: the repo root is an Odoo package, which pytest would import."""

import os
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import odoo_requirements

ODOO_STYLE = """\
cbor2==5.4.2 ; python_version < '3.12'
cbor2==5.6.2 ; python_version >= '3.12'
gevent==21.8.0 ; sys_platform != 'win32' and python_version == '3.10'
gevent==24.2.1 ; sys_platform != 'win32' and python_version >= '3.12'
psycopg2==2.9.9 ; sys_platform != 'win32' and python_version >= '3.12'
python-ldap==3.4.4 ; sys_platform != 'win32'
pypiwin32 ; sys_platform == 'win32'
requests==2.31.0  # comment
"""


class TestOdooRequirements(unittest.TestCase):
    def test_every_supported_python_gets_the_wheel_pins(self):
        for python_version in [(3, 10), (3, 11), (3, 12)]:
            with self.subTest(python_version=python_version):
                pins = odoo_requirements.resolve(ODOO_STYLE.splitlines(), python_version)
                self.assertEqual(
                    pins,
                    [
                        "cbor2==5.6.2",
                        "gevent==24.2.1",
                        "psycopg2-binary==2.9.9",
                        "requests==2.31.0",
                    ],
                )

    def test_unknown_marker_is_refused_rather_than_guessed(self):
        with self.assertRaisesRegex(ValueError, "platform_machine"):
            odoo_requirements.resolve(["foo==1 ; platform_machine == 'arm64'"], (3, 11))

    def test_real_odoo_requirements_resolve(self):
        requirements = Path(os.environ.get("ODOO_SRC", "/nonexistent"), "requirements.txt")
        self.assertTrue(requirements.is_file(), "ODOO_SRC must point at the bootstrapped Odoo tree")
        pins = odoo_requirements.resolve(requirements.read_text().splitlines(), (3, 11))
        names = {pin.split("=")[0].strip().lower() for pin in pins}
        self.assertIn("psycopg2-binary", names)
        self.assertNotIn("psycopg2", names)
        self.assertNotIn("python-ldap", names)
        self.assertFalse([pin for pin in pins if ";" in pin])


if __name__ == "__main__":
    unittest.main()

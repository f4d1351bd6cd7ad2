import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import odoo
from odoo import SUPERUSER_ID, Command, api
from odoo.tests import TransactionCase, new_test_user
from odoo.tools import config

from ..odyssee_emulator import Emulator

ODOO_BIN = Path(odoo.__file__).resolve().parent.parent / "odoo-bin"


def load_migration(version, script):
    """The module of ``migrations/<version>/<script>.py``, to call its functions."""
    path = Path(__file__).parent.parent / "migrations" / version / f"{script}.py"
    name = f"cas_{script.replace('-', '_')}_{version.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration


@contextmanager
def committed_env(registry, uid=SUPERUSER_ID, context=None):
    """An environment on a cursor of its own, committed on exit (rolled back on error).

    For tests that need really committed data or real concurrency (threads,
    each with its own transaction). Building the environment the usual way,
    ``api.Environment(registry.cursor(), ...)``, looks the registry up by name
    (``Transaction(Registry(cr.dbname))``), which takes ``Registry._lock``.
    Odoo's own runner (``odoo-bin --test-enable --stop-after-init``) holds that
    lock while it runs the post_install tests, so a worker thread doing so
    waits forever. The transaction is therefore built from the registry we
    already have: no lookup, no lock, under any runner.
    """
    with registry.cursor() as cr:
        cr.transaction = api.Transaction(registry)
        yield api.Environment(cr, uid, context or {})


class OdooCommandMixin:
    """Runs the addon's ``odoo-bin`` commands as real processes on the test database.

    ``self.processes`` maps a name to its last process; every process still
    running is killed when the test ends, before the cleanups registered ahead
    of its start (the test's committed data) run. Each process logs into a
    folder of the class.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.logs = Path(tempfile.mkdtemp(prefix=f"cas-{cls.__name__}-"))

    def setUp(self):
        super().setUp()
        self.processes = {}

    @staticmethod
    def _kill(process):
        if process.poll() is None:
            process.kill()
            process.wait()

    def _odoo_command(self, name, command, *arguments, environ=None):
        """Start ``odoo-bin <command> -c <config> -d <test db> <arguments>`` as ``name``."""
        log = (self.logs / f"{name}.log").open("ab")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [
                sys.executable,
                str(ODOO_BIN),
                f"--addons-path={config['addons_path']}",
                command,
                "-c",
                config.rcfile,
                "-d",
                self.env.cr.dbname,
                *arguments,
                "--log-level",
                "info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ if environ is not None else dict(os.environ),
        )
        self.addCleanup(self._kill, process)
        self.processes[name] = process
        return process

    def _wait(self, condition, message, timeout=60, process=None):
        """Poll ``condition`` until it holds; fail with ``message`` (or if ``process`` exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if process is not None and process.poll() is not None:
                self.fail(f"{message}: the process exited with {process.returncode}")
            time.sleep(0.2)
        self.fail(message)


class OdysseeEmulatorMixin:
    """A local Odyssee emulator for the class, and backends of the test pointed at it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.emulator = Emulator(domain="TEST", username="api", password="s3cret")
        cls.url = cls.emulator.start()
        cls.addClassCleanup(cls.emulator.stop)

    def _new_backend(self, **values):
        """A backend of the emulator's tenant, the only active one (the demo's steps aside)."""
        Backend = self.env["construction.odyssee.backend"]
        Backend.search([]).active = False
        return Backend.create(
            {
                "name": "Tenant under test",
                "url": self.url,
                "domain": "TEST",
                "username": "api",
                "password": "s3cret",
                **values,
            }
        )


class ConstructionAssetSyncCase(TransactionCase):
    """Two companies, each with a machine and an external system, and one user per role."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.other_company = cls.env["res.company"].create({"name": "Other Builders Ltd"})
        cls.equipment = cls.env["maintenance.equipment"].create(
            {"name": "Excavator under test", "company_id": cls.company.id}
        )
        cls.other_equipment = cls.env["maintenance.equipment"].create(
            {"name": "Crane of the other company", "company_id": cls.other_company.id}
        )
        cls.telematics = cls.env["construction.external.system"].create(
            {
                "name": "Vendor cloud",
                "kind": "telematics",
                "code": "vendor-cloud",
                "auth_secret": "s3cr3t-token",
                "company_id": cls.company.id,
            }
        )
        cls.other_telematics = cls.env["construction.external.system"].create(
            {
                "name": "Vendor cloud",
                "kind": "telematics",
                "code": "vendor-cloud",
                "company_id": cls.other_company.id,
            }
        )
        cls.mapping = cls.env["construction.external.id"].create(
            {
                "system_id": cls.telematics.id,
                "external_id": "DEV-1",
                "equipment_id": cls.equipment.id,
            }
        )
        cls.other_mapping = cls.env["construction.external.id"].create(
            {
                "system_id": cls.other_telematics.id,
                "external_id": "DEV-1",
                "equipment_id": cls.other_equipment.id,
            }
        )

        def user(login, groups, companies=None):
            companies = companies or cls.company
            return new_test_user(
                cls.env,
                login=login,
                groups=groups,
                company_id=companies[0].id,
                company_ids=[Command.set(companies.ids)],
            )

        cls.employee = user("cas_employee", "base.group_user")
        cls.maintenance_manager = user(
            "cas_manager", "base.group_user,maintenance.group_equipment_manager"
        )
        cls.dispatcher = user(
            "cas_dispatcher", "base.group_user,construction_asset_sync.group_dispatcher"
        )
        cls.integration_admin = user(
            "cas_admin", "base.group_user,construction_asset_sync.group_integration_admin"
        )
        cls.other_company_admin = user(
            "cas_other_admin",
            "base.group_user,construction_asset_sync.group_integration_admin",
            companies=cls.other_company,
        )


def odyssee_backend(env, company):
    """The company's active Odyssee backend, created when it has none."""
    Backend = env["construction.odyssee.backend"]
    return Backend.search([("company_id", "=", company.id)], limit=1) or Backend.create(
        {
            "name": f"Odyssee of {company.name}",
            "url": "http://127.0.0.1:9/api",
            "domain": "TEST",
            "username": "api",
            "password": "secret",
            "company_id": company.id,
        }
    )

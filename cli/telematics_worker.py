"""``odoo-bin telematics_worker``: processes the telematics ledger as events arrive.

    odoo-bin --addons-path=<paths> telematics_worker -c odoo.conf -d DB [--name NAME] [--poll 10]

Receipt (HTTP and MQTT) ends its transaction with ``NOTIFY
construction_telematics_events``; this process LISTENs on that channel and, at
each notification (and every ``--poll`` seconds, for events whose retry
comes due), processes batches until the queue is empty, each batch in its own
transaction (``construction.telematics.event._process_batch``). Several
workers, and the scheduled action, share the queue through ``FOR UPDATE SKIP
LOCKED``; a worker killed mid-batch leaves its batch queued, since the
outcome and everything produced commit together.

Why a process of its own: the scheduled action runs on Odoo's cron threads,
shared with the Odyssee sync and every other job, so how fast a reading became
a machine's state depended on what else happened to be scheduled. While a
worker is connected, receipt no longer triggers the scheduled action; its
schedule (every minute) stays as the fallback when no worker runs.

The listening connection is named ``cas-telematics-worker-<name>``
(``application_name``): receipt sees in ``pg_stat_activity`` that a worker runs.
"""

import argparse
import logging
import os
import select
import signal
import socket
import threading
import time

import psycopg2
from odoo import SUPERUSER_ID, api, sql_db
from odoo.cli import Command

from ..models.construction_telematics_event import WORKER_APPLICATION_NAME, WORKER_CHANNEL
from .long_running import load_registry, refreshed_registry, single_database

_logger = logging.getLogger(__name__)

# Test hook: seconds to sleep after a batch is processed and before it commits, so
# that a test can kill -9 the process exactly there.
PAUSE_BEFORE_COMMIT_ENV = "CAS_WORKER_PAUSE_BEFORE_COMMIT"
# How often the stop flag is looked at while waiting for a notification.
WAKE_SECONDS = 0.5


def _arguments(args):
    parser = argparse.ArgumentParser(
        prog="odoo-bin telematics_worker",
        description="Process received telematics events as they arrive (see the addon's README).",
    )
    parser.add_argument("--name", default=socket.gethostname())
    parser.add_argument(
        "--poll",
        type=float,
        default=10.0,
        help="seconds between looks at the queue without a notification (retries coming due)",
    )
    return parser.parse_known_args(args)


class TelematicsWorker(Command):
    """Process received telematics events as they arrive"""

    name = "telematics_worker"

    def run(self, args):
        options, odoo_args = _arguments(args)
        Worker(single_database("telematics_worker", odoo_args), options).run()


class Worker:
    def __init__(self, dbname, options):
        self.dbname = dbname
        self.options = options
        self.registry = load_registry(dbname)
        self.stopping = threading.Event()
        self.pause = float(os.environ.get(PAUSE_BEFORE_COMMIT_ENV) or 0)

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: self.stopping.set())
        listener = self._listen()
        _logger.info(
            "telematics_worker %r: processing database %s on notification",
            self.options.name,
            self.dbname,
        )
        last_look = float("-inf")  # what was queued while no worker ran, at once
        try:
            while not self.stopping.is_set():
                try:
                    notified = self._wait(listener)
                except psycopg2.Error:
                    # The listening connection went away (database restarted): listen
                    # again, and look at the queue at once for what came meanwhile.
                    _logger.warning("telematics_worker: listening connection lost; reconnecting")
                    listener.close()
                    listener = self._listen_again()
                    notified, last_look = False, float("-inf")
                if notified or time.monotonic() - last_look >= self.options.poll:
                    last_look = time.monotonic()
                    done = self._drain()
                    _logger.debug("telematics_worker: woke (notified: %s): %d", notified, done)
        finally:
            listener.close()
        _logger.info("telematics_worker %r stopped", self.options.name)

    def _listen(self):
        _database, connection_info = sql_db.connection_info_for(self.dbname)
        name = f"{WORKER_APPLICATION_NAME}-{self.options.name}"[:63]
        listener = psycopg2.connect(**dict(connection_info, application_name=name))
        listener.autocommit = True
        with listener.cursor() as cr:
            cr.execute(f'LISTEN "{WORKER_CHANNEL}"')
        return listener

    def _listen_again(self):
        while True:
            try:
                return self._listen()
            except psycopg2.Error:
                if self.stopping.wait(WAKE_SECONDS):
                    raise

    def _wait(self, listener):
        """True when a notification came within ``WAKE_SECONDS``."""
        if not select.select([listener], [], [], WAKE_SECONDS)[0]:
            return False
        listener.poll()
        notified = bool(listener.notifies)
        listener.notifies.clear()
        return notified

    def _drain(self):
        """Process batches, each committed on its own, until none is due."""
        done = 0
        try:
            while not self.stopping.is_set():
                # Every batch: under steady load the queue never empties, and a plan
                # or sensor declaration edited meanwhile must reach the next batch
                # (their caches are cleared through the registry's signalling).
                self.registry = refreshed_registry(self.registry)
                with self.registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    processed = env["construction.telematics.event"]._process_batch()
                    if processed and self.pause:
                        _logger.info("telematics_worker: pausing %s s before commit", self.pause)
                        time.sleep(self.pause)
                # The cursor committed on leaving the block.
                if not processed:
                    break
                done += processed
        except Exception:
            # The database went away, or a batch failed beyond the per-event
            # isolation: the events stay queued; the next notification or poll retries.
            _logger.exception("telematics_worker: processing failed; retrying later")
        if done:
            _logger.debug("telematics_worker: %d events processed", done)
        return done

"""``odoo-bin telematics_worker``: processes the telematics ledger as events arrive.

    odoo-bin --addons-path=<paths> telematics_worker -c odoo.conf -d DB [--name NAME] [--poll 10]
             [--shard K/N] [--nice 5]

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

Workers started with ``--shard K/N`` (``K`` of ``1..N``) each take the events of
one shard of devices only (``construction_telematics_event.SHARD_SQL``), so that
two workers never process the same machine at once: unsharded workers sharing a
queue mostly wait for each other's machine locks, since every request of a fleet
gateway holds readings of every machine. A sharded worker whose own shard has
nothing due, and one in every ORPHANS_EVERY batches, also takes the shards no
connected worker holds: a stopped worker's devices are processed from the
others' next notification (or ``--poll``) on, not left to the scheduled action.

The listening connection is named ``cas-telematics-worker-<name>``, or
``cas-telematics-worker-<K>of<N>-<name>`` for a shard (``application_name``):
receipt sees in ``pg_stat_activity`` that a worker runs, sharded workers which
shards are held.
"""

import argparse
import logging
import os
import re
import select
import signal
import socket
import threading
import time

import psycopg2
from odoo import SUPERUSER_ID, api, sql_db
from odoo.cli import Command

from .. import cpu_priority
from ..models.construction_telematics_event import WORKER_APPLICATION_NAME, WORKER_CHANNEL
from .long_running import load_registry, refreshed_registry, single_database

_logger = logging.getLogger(__name__)

# Test hook: seconds to sleep after a batch is processed and before it commits, so
# that a test can kill -9 the process exactly there.
PAUSE_BEFORE_COMMIT_ENV = "CAS_WORKER_PAUSE_BEFORE_COMMIT"
# How often the stop flag is looked at while waiting for a notification.
WAKE_SECONDS = 0.5
# Receipt acknowledges senders and must answer within milliseconds; processing
# only has to keep up. On a machine the two share, processing gives way first,
# and still comes before the Odyssee sync (odyssee_sync_niceness, 10).
DEFAULT_NICENESS = 5


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
    parser.add_argument(
        "--nice",
        type=int,
        default=DEFAULT_NICENESS,
        help="scheduling priority (0-19) below receipt's, which must answer first "
        f"(default: {DEFAULT_NICENESS})",
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="take only the K-th of N shards of devices (and shards no running worker holds)",
    )
    return parser.parse_known_args(args)


def _shard(text):
    """``"K/N"`` -> ``(K - 1, N)``: the zero-based shard index and the shard count."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError("must be K/N with 1 <= K <= N, e.g. 1/2")
    return int(match[1]) - 1, int(match[2])


# A sharded worker looks for shards no one holds when its own has nothing due,
# and at least once every ORPHANS_EVERY batches.
ORPHANS_EVERY = 10
# ``application_name`` tag of a sharded worker: ``...-<K>of<N>-<name>``.
SHARD_TAG = re.compile(rf"^{re.escape(WORKER_APPLICATION_NAME)}-(\d+)of(\d+)-")


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
        self.own_batches = 0
        self.warned_of_counts = False

    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: self.stopping.set())
        # Its main thread, before any other starts: they inherit its priority.
        cpu_priority.lower_current_thread(self.options.nice)
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
        name = f"{WORKER_APPLICATION_NAME}-{self._shard_tag()}{self.options.name}"[:63]
        listener = psycopg2.connect(**dict(connection_info, application_name=name))
        listener.autocommit = True
        with listener.cursor() as cr:
            cr.execute(f'LISTEN "{WORKER_CHANNEL}"')
        return listener

    def _shard_tag(self):
        if self.options.shard is None:
            return ""
        index, count = self.options.shard
        return f"{index + 1}of{count}-"

    def _orphan_shards(self, cr):
        """The shards (of this worker's count) that no connected worker holds."""
        index, count = self.options.shard
        cr.execute(
            """SELECT application_name FROM pg_stat_activity
               WHERE datname = current_database() AND application_name LIKE %s""",
            [f"{WORKER_APPLICATION_NAME}-%"],
        )
        held = {index}
        for (name,) in cr.fetchall():
            match = SHARD_TAG.match(name)
            if not match:
                return []  # an unsharded worker takes every shard
            if int(match[2]) != count:
                # Workers started with different counts: shards overlap whatever
                # this one takes. Leave the others' to them rather than add to it.
                if not self.warned_of_counts:
                    _logger.warning(
                        "telematics_worker: %s shares the queue with a worker of another "
                        "shard count (%s); start all with the same N",
                        self.options.name,
                        name,
                    )
                    self.warned_of_counts = True
                return []
            held.add(int(match[1]) - 1)
        return [shard for shard in range(count) if shard not in held]

    def _process_batch(self, env):
        """One batch: of this worker's shard, or else of the shards no one holds.

        Every ORPHANS_EVERY batches of its own shard, the worker also looks for
        shards no one holds: under a load that keeps its own shard busy, a
        stopped worker's devices still move.
        """
        Event = env["construction.telematics.event"]
        if self.options.shard is None:
            return Event._process_batch()
        index, count = self.options.shard

        def own():
            return Event._process_batch(shards=[index], shard_count=count)

        def orphans():
            shards = self._orphan_shards(env.cr)
            return Event._process_batch(shards=shards, shard_count=count) if shards else 0

        self.own_batches += 1
        steps = (own, orphans) if self.own_batches % ORPHANS_EVERY else (orphans, own)
        for step in steps:
            processed = step()
            if processed:
                return processed
        return 0

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
                    processed = self._process_batch(env)
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

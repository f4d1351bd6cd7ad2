"""What both benchmarks need from the live Odoo: an XML-RPC session and its memory."""

import argparse
import os
import subprocess
import sys
import threading
import time
import xmlrpc.client


def odoo_argument_parser(doc):
    """A parser with the options that find the Odoo of `bash tools/dev.sh run`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--db", default=os.environ.get("CAS_DB", "construction_asset_sync"))
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin")
    return parser


class OdooRPC:
    """``rpc(model, method, *args, **kwargs)`` as the given user."""

    def __init__(self, url, db, user, password):
        url = url.rstrip("/")
        self.db, self.password = db, password
        self.uid = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").authenticate(
            db, user, password, {}
        )
        if not self.uid:
            raise SystemExit("cannot log in; start Odoo with `bash tools/dev.sh run` first")
        self.models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def __call__(self, model, method, *args, **kwargs):
        return self.models.execute_kw(
            self.db, self.uid, self.password, model, method, list(args), kwargs
        )

    def addon_record_id(self, name):
        """The id of the addon's record of XML id ``construction_asset_sync.<name>``."""
        [data] = self(
            "ir.model.data",
            "search_read",
            [("module", "=", "construction_asset_sync"), ("name", "=", name)],
            ["res_id"],
        )
        return data["res_id"]


def psql(database, statement, required=True):
    """Run ``statement`` through ``psql`` (PG* environment), outside any timing."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-d", database, "-c", statement],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode and required:
        raise SystemExit(f"{statement} failed: {result.stderr}")
    if result.returncode or result.stderr.strip():
        # e.g. "WARNING: permission denied to vacuum": psql still exits with 0.
        print(f"warning: {statement}: {result.stderr.strip()}", file=sys.stderr)


def settle_database(database, vacuum=()):
    """Vacuum the tables ``vacuum`` names, analyse everything, then checkpoint.

    Each run then starts from the same state, as autovacuum and the checkpointer
    keep a database in service. A PostgreSQL tuned for test runs may have
    autovacuum off (this machine's has): then a run leaves dead row versions and
    no statistics of what it added, and the next one is slower. The telematics
    bench's own poll of the queue took 48 ms instead of 0.1 ms after a few runs;
    an Odyssee import into a new database took 26.0 and 34.7 s in its first two
    runs without it, then 17.5-20.1 s; with it, 22.1 and 16.7 s, then 16.6-20.2 s. The
    checkpoint writes the previous run's pages now, not inside the next run's
    window.
    """
    if vacuum:
        psql(database, f"VACUUM (ANALYZE) {', '.join(vacuum)}")
    psql(database, "ANALYZE")
    # Superusers and pg_checkpoint members only: without it, runs are noisier.
    psql(database, "CHECKPOINT", required=False)
    # psql returns before its backend has exited and been reaped: without a
    # pause, the vacuum's CPU lands in the next run's PostgreSQL CPU.
    time.sleep(1)


def _processes():
    """``(pid, command line arguments)`` of every process this user can read."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                yield int(entry), cmdline.read().decode(errors="replace").split("\0")
        except OSError:
            continue


# PostgreSQL's own processes whose work follows from what the backends write.
POSTGRES_WRITERS = ("checkpointer", "background writer", "walwriter", "autovacuum")


def _serves(args, database):
    """Whether the command line ``args`` is an odoo-bin serving ``database``."""
    return any(arg.endswith("odoo-bin") for arg in args) and any(
        (arg in ("-d", "--database") and index + 1 < len(args) and args[index + 1] == database)
        or arg == f"--database={database}"
        for index, arg in enumerate(args)
    )


def odoo_pids(database):
    """Every Odoo process serving ``database``: the server (and its prefork workers),
    and the commands ``tools/dev.sh run`` starts beside it (the processing worker,
    the MQTT consumer). Processes of other databases on the machine are left out."""
    pids = [pid for pid, args in _processes() if _serves(args, database)]
    if not pids:
        raise SystemExit(f"no running odoo-bin serves the database {database}")
    return pids


def _families(database):
    """``{pid: family}`` of the processes that do the work of ``database``.

    Families: ``odoo_server`` (the server and its prefork workers),
    ``processing_worker``, ``mqtt_consumer`` (the commands ``tools/dev.sh run``
    starts beside it) and ``postgres`` (the backends connected to ``database``,
    and the server's writers, which flush what they wrote; not the backends of
    other databases, nor the postmaster, whose count of reaped children would
    bring in every database's closed connections).
    """
    families = {}
    for pid, args in _processes():
        title = " ".join(args).strip()
        if title.startswith("postgres:"):
            if f" {database} " in f"{title} " or any(
                writer in title for writer in POSTGRES_WRITERS
            ):
                families[pid] = "postgres"
        elif _serves(args, database):
            if "telematics_worker" in args:
                families[pid] = "processing_worker"
            elif "telematics_mqtt" in args:
                families[pid] = "mqtt_consumer"
            else:
                families[pid] = "odoo_server"
    return families


def cpu_seconds(database):
    """CPU seconds (user + system) spent so far by each process family of ``_families``,
    and by this process (``bench_client``, its sampling threads included).

    A parent's counts of its waited-for children are included: a prefork worker
    recycled during a run still counts, through the server that reaped it.
    """
    tick = os.sysconf("SC_CLK_TCK")
    totals = {"odoo_server": 0.0, "processing_worker": 0.0, "mqtt_consumer": 0.0, "postgres": 0.0}
    for pid, family in _families(database).items():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # After the command name in parentheses: utime, stime, cutime, cstime
                # are fields 14 to 17 of the line.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        totals[family] += sum(int(value) for value in fields[11:15]) / tick
    own = os.times()
    totals["bench_client"] = own.user + own.system
    return totals


def rss_mb(pids):
    """Total RSS of the Odoo processes (one with workers = 0, master and workers otherwise)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += (
                    next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
                    / 1024
                )
        except (FileNotFoundError, StopIteration):
            continue
    return total


class MemorySampler(threading.Thread):
    """Peak RSS of the Odoo processes between ``start()`` and ``stop()``."""

    def __init__(self, pids, interval=0.05):
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peak, self.running = 0.0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_mb(self.pids))
            time.sleep(self.interval)

    def stop(self):
        self.running = False
        self.join()
        return round(self.peak)

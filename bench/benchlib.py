"""What both benchmarks need from the live Odoo: an XML-RPC session and its memory."""

import argparse
import os
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


def odoo_pids(database):
    """Every Odoo process serving ``database``: the server (and its prefork workers),
    and the commands ``tools/dev.sh run`` starts beside it (the processing worker,
    the MQTT consumer). Processes of other databases on the machine are left out."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any(arg.endswith("odoo-bin") for arg in args):
            continue
        serves = any(
            (arg in ("-d", "--database") and index + 1 < len(args) and args[index + 1] == database)
            or arg == f"--database={database}"
            for index, arg in enumerate(args)
        )
        if serves:
            pids.append(int(entry))
    if not pids:
        raise SystemExit(f"no running odoo-bin serves the database {database}")
    return pids


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

"""Odyssee import benchmark against a live Odoo started by `bash tools/dev.sh run`.

Fills an in-process Odyssee emulator with --approvals completed jobs (each with
5 parts and 3 timesheets; every fifth job also with a daily approval before
its final one; the jobs go to the tenant's technicians in turn and their parts
run through its articles), shaped as the reference documents a tenant: GUIDs in upper
case in some tables and foreign keys, lower case in the others. The Odoo side
knows that tenant as a customer's would: its articles as products, its users
as employees, its installations as machines on their customers' job sites, so
that every line finds its product or technician, every time line becomes a
timesheet, and every request its machine. It points a backend of the running
Odoo at the tenant, analyses the database (``settle_database``: a run starts
from the statistics autovacuum keeps in service) and measures in one run:
  * wall time until every approval (its lines come in with it) and PDF is imported;
  * API calls per approval of the connector, against the one-call-per-approval
    flow of Odyssee's ERP guide (Jobs, JobPartUsage and JobNonPartUsage per
    approval) run on the same emulator by the plain client;
  * CPU seconds Odoo and PostgreSQL spent on the import (the emulator's share is
    this script's): steadier than wall time on a busy machine, so an A/B of two
    versions can show a change the spread of wall times hides;
  * peak RSS of the Odoo process during the import, and during the first
    --large-seconds of a --large backlog (flat means page by page).

Usage: python bench/odyssee_bench.py [--approvals 1000] [--large 100000]
The script needs the addon's plain modules only (run it from the repository root).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchlib import (
    MemorySampler,
    OdooRPC,
    cpu_seconds,
    odoo_argument_parser,
    odoo_pids,
    settle_database,
)

from odyssee_emulator import MIXED_CASE, Emulator, populate
from protocols import odata, odyssee_client

PULL_CONTROLLERS = ("JobApproval", "Jobs", "JobPartUsage", "JobNonPartUsage")


def tenant_keys(emulator):
    """What the Odoo side of ``emulator``'s tenant must know (plain values, picklable)."""
    tables = emulator.tables
    return {
        "articles": [(a["code"], a["name"]) for a in tables["Article"].values()],
        "users": [(u["id"], f"{u['firstname']} {u['lastname']}") for u in tables["User"].values()],
        "customers": [(c["id"], c["code"], c["name"]) for c in tables["Company"].values()],
        "machines": [
            (m["id"], m["name"], m["company_id"], m["serial_number"])
            for m in tables["Project"].values()
        ],
    }


def match_odoo_to(odoo, keys, label):
    """Make the Odoo side know the tenant of ``keys`` (``tenant_keys``), as a customer's does.

    Run once the backend is the active one: the machines' and employees' Odyssee
    ids are bound in its system. Every call makes new employees, customers, job
    sites and machines (labelled with ``label``); products are found by code and
    made once.
    """
    codes = [code for code, _name in keys["articles"]]
    known = {
        p["default_code"]
        for p in odoo(
            "product.product", "search_read", [("default_code", "in", codes)], ["default_code"]
        )
    }
    missing = [
        {"name": name, "default_code": code, "list_price": 10.0}
        for code, name in keys["articles"]
        if code not in known
    ]
    if missing:
        odoo("product.product", "create", missing)
    odoo(
        "hr.employee",
        "create",
        [{"name": f"{name} {label}", "odyssee_user_guid": guid} for guid, name in keys["users"]],
    )
    partners = odoo(
        "res.partner",
        "create",
        [{"name": f"{name} {label}", "ref": code} for _guid, code, name in keys["customers"]],
    )
    sites = odoo(
        "project.project",
        "create",
        [
            {"name": f"Site of {name} {label}", "partner_id": partner}
            for (_guid, _code, name), partner in zip(keys["customers"], partners, strict=True)
        ],
    )
    site_of = {
        guid: site for (guid, _code, _name), site in zip(keys["customers"], sites, strict=True)
    }
    odoo(
        "maintenance.equipment",
        "create",
        [
            {
                "name": f"{name} {label}",
                "serial_no": f"{serial}-{label}",
                "odyssee_installation_guid": guid,
                "job_site_project_id": site_of[customer],
            }
            for guid, name, customer, serial in keys["machines"]
        ],
    )


def imported_world(odoo, backend):
    """What the import made of the tenant: its lines, those Odoo could not fully link
    (an issue), the time lines that have their timesheet, the approvals whose request
    has no machine."""
    lines = [("backend_id", "=", backend)]
    return {
        "lines": odoo("construction.odyssee.usage.line", "search_count", lines),
        "lines_with_an_issue": odoo(
            "construction.odyssee.usage.line", "search_count", [*lines, ("issue", "!=", False)]
        ),
        "timesheets": odoo(
            "construction.odyssee.usage.line",
            "search_count",
            [*lines, ("kind", "=", "time"), ("timesheet_id", "!=", False)],
        ),
        "approvals_without_machine": odoo(
            "construction.odyssee.approval",
            "search_count",
            [("backend_id", "=", backend), ("equipment_id", "=", False)],
        ),
    }


def postpone_scheduled_sync(odoo):
    """Keep the scheduled sync from starting an import before the clock does.

    It runs every minute over the active backends: one run that fell between a
    backend's creation and *Sync now* started the import early, and the clock
    measured only its rest (12.9 s in a series of 18.8 to 22.3 s). *Sync now*
    still hands a backlog to it at once (a trigger does not wait for the next
    call date). Returns what puts the schedule back.
    """
    cron = odoo.addon_record_id("ir_cron_odyssee_sync")
    [schedule] = odoo("ir.cron", "read", [cron], ["nextcall"])
    # Waits for a run under way (it holds the job's row) before the clock can start.
    odoo("ir.cron", "write", [cron], {"nextcall": "2099-01-01 00:00:00"})
    return lambda: odoo("ir.cron", "write", [cron], {"nextcall": schedule["nextcall"]})


def run_import(odoo, emulator, expected, timeout, stop_after=None):
    """Point a fresh backend at ``emulator``, whose tenant the Odoo side is made to know.

    Returns (seconds until the approvals are in, with their lines; seconds until
    their PDFs are too; peak RSS; approvals imported; ``imported_world``; CPU
    seconds per process family during the import, ``cpu_seconds``). The
    Odoo side is made before the clock and the memory sampler start.
    """
    url = emulator.start()
    resume_schedule = postpone_scheduled_sync(odoo)
    previous = odoo("construction.odyssee.backend", "search", [("active", "=", True)])
    odoo("construction.odyssee.backend", "write", previous, {"active": False})
    backend = odoo(
        "construction.odyssee.backend",
        "create",
        {
            "name": f"bench {time.time():.0f}",
            "url": url,
            "domain": emulator.domain,
            "username": emulator.username,
            "password": emulator.password,
            "rate_limit": 0,
        },
    )
    sampler = None
    try:
        match_odoo_to(odoo, tenant_keys(emulator), f"({backend})")
        settle_database(odoo.db)
        sampler = MemorySampler(odoo_pids(odoo.db), interval=0.1)
        sampler.start()
        cpu_before = cpu_seconds(odoo.db)
        started = time.perf_counter()
        odoo("construction.odyssee.backend", "action_sync_now", [backend])
        imported, approvals_done = 0, None
        # Every half second: Sync now answers at once, the scheduled action imports.
        while time.perf_counter() - started < timeout:
            imported = odoo(
                "construction.odyssee.approval", "search_count", [("backend_id", "=", backend)]
            )
            pdfs = odoo(
                "construction.odyssee.approval",
                "search_count",
                [("backend_id", "=", backend), ("pdf_attachment_id", "!=", False)],
            )
            if imported >= expected and approvals_done is None:
                approvals_done = time.perf_counter() - started
            if stop_after and time.perf_counter() - started > stop_after:
                break
            if imported >= expected and pdfs >= expected:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(odoo.db)
        cpu = {family: round(cpu_after[family] - cpu_before[family], 2) for family in cpu_after}
        world = imported_world(odoo, backend)
    finally:
        peak = sampler.stop() if sampler else None
        odoo("construction.odyssee.backend", "write", [backend], {"active": False})
        odoo("construction.odyssee.backend", "write", previous, {"active": True})
        resume_schedule()
        emulator.stop()
    return approvals_done, elapsed, peak, imported, world, cpu


def guide_flow(emulator):
    """The export loop of Odyssee's ERP guide: per approval, its job, parts and time."""
    url = emulator.start()
    client = odyssee_client.OdysseeClient(
        url, emulator.domain, emulator.username, emulator.password, max_requests_per_second=0
    )
    started = time.perf_counter()
    query = odata.Query(
        filter=odata.all_of(
            odata.cond("modified_dateutc", "gt", odata.parse_timestamp("1980-01-01T00:00:00Z")),
            odata.cond("is_daily_approval", "eq", False),
        ),
        orderby="modified_dateutc asc",
    )
    approvals = 0
    for approval in client.iter_all("JobApproval", query):
        job = odata.Guid(approval["jobs_id"])
        client.get(
            "Jobs",
            query=odata.Query(select=["reference_back_office"], filter=odata.cond("id", "eq", job)),
        )
        list(client.iter_all("JobPartUsage", odata.Query(filter=odata.cond("jobs_id", "eq", job))))
        list(
            client.iter_all("JobNonPartUsage", odata.Query(filter=odata.cond("jobs_id", "eq", job)))
        )
        approvals += 1
    elapsed = time.perf_counter() - started
    emulator.stop()
    return client.calls, approvals, elapsed


def tenant(approvals):
    emulator = Emulator(domain="BENCH", username="bench", password="bench-secret")
    populate(
        emulator,
        customers=50,
        machines_per_customer=4,
        articles=200,
        users=10,
        approvals=approvals,
        parts_per_approval=5,
        timesheets_per_approval=3,
        daily_every=5,
        spread_work=True,
    )
    emulator.upper_case = set(MIXED_CASE)
    return emulator


def main():
    parser = odoo_argument_parser(__doc__)
    parser.add_argument("--approvals", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--large-seconds", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    odoo = OdooRPC(args.url, args.db, args.user, args.password)

    emulator = tenant(args.approvals)
    seconds, with_pdfs, peak, imported, world, cpu = run_import(
        odoo, emulator, args.approvals, args.timeout
    )
    pull_calls = sum(emulator.calls_by_controller.get(c, 0) for c in PULL_CONTROLLERS)
    emulator_for_guide = tenant(args.approvals)
    guide_calls, guide_approvals, guide_seconds = guide_flow(emulator_for_guide)
    results = {
        "approvals": imported,
        **world,
        "import_wall_s": round(seconds, 1) if seconds else None,
        "import_wall_s_with_pdfs": round(with_pdfs, 1),
        "import_cpu_s": cpu,
        "connector_calls_per_approval": round(pull_calls / max(imported, 1), 3),
        "pdf_calls_per_approval": round(
            emulator.calls_by_controller.get("DbFile", 0) / max(imported, 1), 3
        ),
        "connector_calls_by_controller": {
            c: emulator.calls_by_controller.get(c, 0) for c in PULL_CONTROLLERS
        },
        "guide_flow_calls_per_approval": round(guide_calls / max(guide_approvals, 1), 3),
        "fewer_calls_ratio": round(
            guide_calls / max(guide_approvals, 1) / max(pull_calls / max(imported, 1), 1e-9), 1
        ),
        "guide_flow_wall_s_without_writes": round(guide_seconds, 1),
        "odoo_peak_rss_mb": peak,
    }
    if args.large:
        large = tenant(args.large)
        _seconds, _with_pdfs, large_peak, large_imported, _world, _cpu = run_import(
            odoo, large, args.large, args.timeout, stop_after=args.large_seconds
        )
        results[f"odoo_peak_rss_mb_backlog_{args.large}"] = large_peak
        results[f"approvals_imported_in_{args.large_seconds:g}s_of_that_backlog"] = large_imported
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Fills an Odyssee emulator with a plausible tenant: customers, machines, jobs and their work."""

import random

SCENARIOS = {
    "empty": {"customers": 0, "approvals": 0},
    # Matches the addon's demo data: the excavator's installation, the admin
    # employee's Odyssee user and two demo products; the third article is unknown.
    "demo": {
        "customers": 3,
        "machines_per_customer": 2,
        "articles": 3,
        "users": 2,
        "approvals": 4,
        "parts_per_approval": 3,
        "timesheets_per_approval": 2,
        "machine_guids": ["3f2a9c1e-7b4d-4e8a-9c61-1d2e3f4a5b01"],
        "user_guids": ["5e0a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"],
        "article_codes": ["CAS-HF-001", "CAS-OIL-15W40", "VENDOR-SEAL-77"],
    },
    "bench": {
        "customers": 50,
        "machines_per_customer": 4,
        "articles": 200,
        "users": 10,
        "approvals": 1000,
        "parts_per_approval": 5,
        "timesheets_per_approval": 3,
    },
}


# Tables ("Jobs") and foreign keys ("JobApproval.jobs_id") a tenant writes in upper
# case, the others in lower case: Odyssee uses either, per table and per foreign
# key (reference, section 1). For ``Emulator.upper_case``.
MIXED_CASE = frozenset(
    {
        "JobApproval",
        "JobPartUsage.jobs_id",
        "JobNonPartUsage.user_id",
        "DbFile.id_in_table",
        "Jobs.job_status_id",
    }
)


def _nth(values, index):
    return values[index] if index < len(values) else None


def populate(
    emulator,
    customers=3,
    machines_per_customer=2,
    articles=8,
    users=2,
    approvals=4,
    parts_per_approval=3,
    timesheets_per_approval=2,
    daily_every=0,
    seed=7,
    machine_guids=(),
    user_guids=(),
    article_codes=(),
    spread_work=False,
):
    """Create master data and ``approvals`` completed jobs; returns the approvals.

    Jobs are born in Odyssee (empty ``reference_back_office``), as when a
    technician opens one on site; every ``daily_every``-th job also gets an
    intermediate daily approval first. ``machine_guids``, ``user_guids`` and
    ``article_codes`` fix the keys of the first machines, users and articles.
    With ``spread_work``, the jobs go to the users in turn and their parts run
    through the articles; otherwise every job is the first user's, with the
    first articles.
    """
    rng = random.Random(seed)
    category = emulator.add("ArticleCategory", code="PARTS", name="Spare parts")
    for index in range(articles):
        emulator.add(
            "Article",
            code=_nth(article_codes, index) or f"ART-{index:04d}",
            name=f"Spare part {index}",
            entered_price=round(rng.uniform(5, 400), 2),
            article_category_id=category["id"],
        )
    for index in range(users):
        emulator.add(
            "User",
            id=_nth(user_guids, index),
            code=f"TECH{index:02d}",
            username=f"tech{index}@example.com",
            firstname="Tech",
            lastname=f"Nr {index}",
            email=f"tech{index}@example.com",
        )
    in_service = next(s for s in emulator.tables["ProjectStatus"].values() if s["is_default"])
    machines = []
    for index in range(customers):
        company = emulator.add(
            "Company",
            code=f"CUST{index:04d}",
            name=f"Customer {index}",
            city="Lyon",
            is_client=True,
        )
        for number in range(machines_per_customer):
            machines.append(
                emulator.add(
                    "Project",
                    id=_nth(machine_guids, len(machines)),
                    name=f"Machine {index}-{number}",
                    company_id=company["id"],
                    project_status_id=in_service["id"],
                    serial_number=f"SN{index:04d}{number}",
                )
            )
    job_type = next(iter(emulator.tables["JobType"].values()))
    technicians = [user["id"] for user in emulator.tables["User"].values()]
    done = []
    for index in range(approvals):
        machine = machines[index % len(machines)]
        job = emulator.add(
            "Jobs", name=f"Repair {index}", project_id=machine["id"], job_type_id=job_type["id"]
        )
        work = {}
        if spread_work and technicians:
            work = {
                "user_id": technicians[index % len(technicians)],
                "first_article": index * parts_per_approval,
            }
        if daily_every and index % daily_every == 0:
            emulator.complete_job(job["id"], parts=1, timesheets=1, daily=True, **work)
        done.append(
            emulator.complete_job(
                job["id"], parts=parts_per_approval, timesheets=timesheets_per_approval, **work
            )
        )
    return done

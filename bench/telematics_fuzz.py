"""Long property-based fuzz run of the telematics API against a live Odoo (`bash tools/dev.sh run`).

The same requests as the suite's bounded fuzz test (protocols/telematics_fuzz.py,
drawn from the served OpenAPI document's schemas plus hostile JSON), many more
of them, then the same checks: no answer >= 500, every refusal a problem
document naming its fields, every 202 a Receipt, every accepted item processed
(none failed or dead) and no out-of-range value on the machine the run maps.

Usage: python bench/telematics_fuzz.py [--url http://127.0.0.1:8069] [--db DB]
           [--requests 10000] [--seed 1] [--workers 4]
Needs the development requirements (hypothesis, hypothesis-jsonschema, jsonschema).
"""

import json
import multiprocessing
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from benchlib import OdooRPC, odoo_argument_parser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, seed, settings
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from protocols import telematics_fuzz


def validators(url):
    with urllib.request.urlopen(f"{url}/telematics/v1/openapi.json") as response:
        document = json.load(response)
    uri = "urn:served-openapi"
    registry = Registry().with_resource(
        uri, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return {
        name: Draft202012Validator({"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry)
        for name in ("Receipt", "Problem")
    }


def setup(call, tag):
    source_id = call("construction.telematics.source", "create", {"name": f"fuzz {tag}"})
    action = call("construction.telematics.source", "action_generate_api_key", [source_id])
    key = call("construction.telematics.key.wizard", "read", [action["res_id"]], ["api_key"])[0][
        "api_key"
    ]
    system_id = call("construction.telematics.source", "read", [source_id], ["external_system_id"])[
        0
    ]["external_system_id"][0]
    machine_id = call("maintenance.equipment", "create", {"name": f"fuzz {tag}"})
    call(
        "construction.external.id",
        "create",
        {
            "system_id": system_id,
            "external_id": telematics_fuzz.MAPPED_DEVICE,
            "equipment_id": machine_id,
        },
    )
    return source_id, key, machine_id


def send(url, key, path, body, headers):
    request = urllib.request.Request(
        f"{url}/telematics/v1/{path}",
        data=body,
        method="POST",
        headers=dict(headers, Authorization=f"Bearer {key}"),
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def check(status, content_type, raw, schemas):
    """What is wrong with one answer, or None."""
    if status >= 500:
        return f"HTTP {status}"
    try:
        answer = json.loads(raw)
    except ValueError:
        return f"HTTP {status} without a JSON body ({content_type})"
    if status >= 400:
        if content_type != "application/problem+json":
            return f"HTTP {status} as {content_type}"
        if not schemas["Problem"].is_valid(answer) or not answer.get("errors"):
            return f"HTTP {status}: not a problem document naming its fields"
        if not all(error.get("field") for error in answer["errors"]):
            return f"HTTP {status}: an error without a field"
        return None
    if status != 202 or content_type != "application/json":
        return f"HTTP {status} as {content_type}"
    if not schemas["Receipt"].is_valid(answer):
        return "202 body is not a Receipt"
    return None


def fuzz(job):
    """One worker: its own source and machine, ``count`` requests from ``seed``."""
    args, worker_seed, count = job
    url = args.url.rstrip("/")
    call = OdooRPC(url, args.db, args.user, args.password)
    source_id, key, machine_id = setup(call, uuid.uuid4().hex[:6])
    schemas = validators(url)
    statuses, problems, samples = Counter(), Counter(), {}

    @seed(worker_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],  # count every request; a failure is recorded, not shrunk
    )
    @given(telematics_fuzz.requests())
    def run(generated):
        path, body, headers = generated
        status, content_type, raw = send(url, key, path, body, headers)
        statuses[status] += 1
        problem = check(status, content_type, raw, schemas)
        if problem:
            problems[problem] += 1
            samples.setdefault(problem, (path, body[:300].decode("utf-8", "replace")))

    run()
    return statuses, problems, samples, source_id, machine_id


def main():
    parser = odoo_argument_parser(__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="parallel senders")
    args = parser.parse_args()
    call = OdooRPC(args.url.rstrip("/"), args.db, args.user, args.password)
    share = -(-args.requests // args.workers)
    jobs = [(args, args.seed + index, share) for index in range(args.workers)]
    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        outcomes = pool.map(fuzz, jobs)
    sent_s = time.perf_counter() - started
    statuses, problems, samples = Counter(), Counter(), {}
    for worker_statuses, worker_problems, worker_samples, _source, _machine in outcomes:
        statuses.update(worker_statuses)
        problems.update(worker_problems)
        for problem, sample in worker_samples.items():
            samples.setdefault(problem, sample)
    source_ids = [outcome[3] for outcome in outcomes]
    machine_ids = [outcome[4] for outcome in outcomes]
    deadline = time.time() + 900
    queued = [("source_id", "in", source_ids), ("state", "=", "pending")]
    while call("construction.telematics.event", "search_count", queued) and time.time() < deadline:
        time.sleep(2)
    failed = call(
        "construction.telematics.event",
        "search_count",
        [("source_id", "in", source_ids), ("state", "in", ["failed", "dead"])],
    )
    out_of_range = {}
    for machine in call("maintenance.equipment", "read", machine_ids, list(telematics_fuzz.BOUNDS)):
        for field, (low, high) in telematics_fuzz.BOUNDS.items():
            if not low <= (machine[field] or 0) <= high:
                out_of_range[f"{machine['id']}.{field}"] = machine[field]
    results = {
        "requests": sum(statuses.values()),
        "workers": args.workers,
        "seconds": round(sent_s),
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
        "responses_5xx": sum(n for status, n in statuses.items() if status >= 500),
        "contract_violations": dict(problems),
        "violation_samples": samples,
        "events_pending_after_wait": call("construction.telematics.event", "search_count", queued),
        "events_failed_or_dead": failed,
        "machine_out_of_range": out_of_range,
    }
    print(json.dumps(results, indent=2))
    if problems or failed or out_of_range:
        sys.exit(1)


if __name__ == "__main__":
    main()

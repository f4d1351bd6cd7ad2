"""CPU cost of parsing and validating one request of 5,000 readings, without Odoo.

The accept path's share that validation changes: the JSON parse, the door's
checks and each reading's validation, as ``controllers/telematics.py`` runs
them. Process CPU time (not wall time), best of --repeat, so that other work
on the machine disturbs it less than the HTTP benchmark; run it against
another checkout with --tree to compare (e.g. ``git worktree`` of an older
commit).

Usage: python bench/telematics_validation_bench.py [--tree PATH] [--readings 5000]
"""

import argparse
import importlib
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def body(count):
    start = datetime.now(timezone.utc) - timedelta(days=30)
    readings = [
        {
            "device_id": f"B-{index % 100}",
            "at": (start + timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "engine_hours": 1000 + index / 60,
            "fuel_level_pct": 50.0,
            "lat": 48.0,
            "lon": 2.0,
        }
        for index in range(count)
    ]
    return json.dumps({"readings": readings}).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--readings", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, args.tree)
    payloads = importlib.import_module("protocols.telematics_payloads")
    try:
        safe_json = importlib.import_module("protocols.safe_json")
    except ImportError:  # before the door existed
        safe_json = None
    raw = body(args.readings)

    def accept():
        if safe_json:
            document = safe_json.loads(raw)
            assert safe_json.find_hostile(raw, document) is None
        else:
            document = json.loads(raw)
        items, error = payloads.split_readings(document)
        assert not error
        # As each tree's controller calls it: the door's tree reads the clock once.
        now = datetime.now(timezone.utc).replace(tzinfo=None) if safe_json else None
        for item in items:
            _reading, errors = payloads.parse_reading(item, now=now)
            assert not errors

    best = float("inf")
    for _ in range(args.repeat):
        started = time.process_time()
        accept()
        best = min(best, time.process_time() - started)
    print(
        json.dumps(
            {
                "tree": args.tree,
                "readings": args.readings,
                "cpu_ms_per_request": round(best * 1000, 1),
                "readings_per_cpu_s": round(args.readings / best),
            }
        )
    )


if __name__ == "__main__":
    main()

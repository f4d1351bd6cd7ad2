"""Bounded property-based fuzzing of the telematics API against its served OpenAPI document.

Fixed seed (``derandomize``) and a fixed number of requests, so the suite stays
repeatable and short; ``bench/telematics_fuzz.py`` is the long run (10,000+
requests) against a live server.
"""

from collections import Counter

from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from odoo.tests import HttpCase, tagged
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..protocols import telematics_fuzz
from .telematics_common import make_fleet

EXAMPLES = 300


@tagged("post_install", "-at_install")
class TestTelematicsFuzz(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source, cls.key, cls.equipment = make_fleet(cls.env)
        cls.Event = cls.env["construction.telematics.event"]

    def validator(self, document, name):
        uri = "urn:served-openapi"
        registry = Registry().with_resource(
            uri, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        return Draft202012Validator(
            {"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry
        )

    def test_no_input_gets_a_5xx_and_every_answer_keeps_the_contract(self):
        served = self.url_open("/telematics/v1/openapi.json").json()
        receipt, problem = self.validator(served, "Receipt"), self.validator(served, "Problem")
        statuses = Counter()

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(telematics_fuzz.requests())
        def send(generated):
            path, body, headers = generated
            headers = dict(headers, Authorization=f"Bearer {self.key}")
            # Always a POST, even with an empty body (url_open would GET).
            response = self.opener.post(
                f"{self.base_url()}/telematics/v1/{path}", data=body, headers=headers, timeout=60
            )
            status = response.status_code
            statuses[status] += 1
            self.assertLess(status, 500, f"{path} {body[:300]!r}: {response.text[:500]}")
            content_type = response.headers.get("Content-Type")
            if status >= 400:
                self.assertEqual(content_type, "application/problem+json", response.text[:300])
                answer = response.json()
                problem.validate(answer)
                self.assertEqual(answer["status"], status)
                self.assertTrue(answer.get("errors"), "a refusal names its fields")
                self.assertTrue(all(error["field"] for error in answer["errors"]))
            else:
                self.assertEqual(status, 202, response.text[:300])
                self.assertEqual(content_type, "application/json")
                receipt.validate(response.json())

        send()
        self.assertEqual(sum(statuses.values()), EXAMPLES)
        # The run covered acceptance and refusals alike.
        self.assertGreater(statuses[202], EXAMPLES // 10, statuses)
        self.assertGreater(sum(n for s, n in statuses.items() if 400 <= s < 500), EXAMPLES // 10)

        # Whatever was accepted processes, and no out-of-range value reaches the machine.
        for _batch in range(100):
            if not self.Event._process_batch():
                break
        self.assertFalse(
            self.Event.search(
                [("source_id", "=", self.source.id), ("state", "in", ("failed", "dead"))]
            )
        )
        self.equipment.invalidate_recordset()
        for field, (low, high) in telematics_fuzz.BOUNDS.items():
            value = self.equipment[field]
            self.assertTrue(low <= value <= high, f"{field} = {value}")
        for reading in self.env["construction.telematics.reading"].search(
            [("equipment_id", "=", self.equipment.id)]
        ):
            self.assertTrue(-90 <= reading.lat <= 90 and 0 <= reading.fuel_level_pct <= 100)

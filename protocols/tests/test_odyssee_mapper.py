"""The mapper: Odyssee rows as our values, ids normalised (no database needed)."""

import unittest

from protocols import odyssee_mapper


class TestMapper(unittest.TestCase):
    def test_job_status_is_a_normalised_guid_not_a_guess(self):
        job = odyssee_mapper.job(
            {
                "id": "AA000000-0000-4000-8000-000000000001",
                "project_id": "BB000000-0000-4000-8000-000000000002",
                "job_status_id": "CC000000-0000-4000-8000-000000000003",
                "reference_back_office": "",
            }
        )
        self.assertEqual(job["status_guid"], "cc000000-0000-4000-8000-000000000003")
        self.assertEqual(job["installation_guid"], "bb000000-0000-4000-8000-000000000002")
        self.assertFalse(job["reference_back_office"])
        self.assertEqual(odyssee_mapper.job(None)["status_guid"], "")

    def test_foreign_keys_in_either_case_are_one_id(self):
        upper = odyssee_mapper.usage_line(
            "time",
            {
                "id": "DD000000-0000-4000-8000-000000000004",
                "jobs_id": "AA000000-0000-4000-8000-000000000001",
                "job_approval_id": "EE000000-0000-4000-8000-000000000005",
                "user_id": "FF000000-0000-4000-8000-000000000006",
                "quantity": 2.5,
                "working_date": "2026-11-20T08:00:00.000",
            },
        )
        self.assertEqual(
            (upper["odyssee_guid"], upper["approval_guid"], upper["user_guid"]),
            (
                "dd000000-0000-4000-8000-000000000004",
                "ee000000-0000-4000-8000-000000000005",
                "ff000000-0000-4000-8000-000000000006",
            ),
        )

    def test_daily_and_multi_approvals_are_not_final(self):
        self.assertTrue(odyssee_mapper.is_final_approval({"is_daily_approval": False}))
        self.assertFalse(odyssee_mapper.is_final_approval({"is_daily_approval": True}))
        self.assertFalse(odyssee_mapper.is_final_approval({"ready_for_multi_approval": True}))

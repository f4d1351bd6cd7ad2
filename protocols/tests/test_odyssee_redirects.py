"""A tenant that moved: the client never follows a redirect.

Odyssee became Wello, and its hosts moved with it (``odysseemobile.com`` to
``wello.solutions``). Followed, a redirect to another host would go there
without the credentials (requests drops them, then applies a ``.netrc`` entry
if one matches) and a POST answered 301 or 302 would be sent again as a GET,
so a write could come back as a page read. The client stops and names the
new location instead, so that a person sets the URL.
"""

import unittest

import requests

from odyssee_emulator import Emulator
from odyssee_emulator.server import Faults
from protocols import odyssee_client


class TestRedirects(unittest.TestCase):
    def setUp(self):
        self.new_home = Emulator(domain="TESTAPI", username="APIUser", password="123456")
        # Another host name for the same machine: the move crosses hosts, as Odyssee's did.
        new_url = self.new_home.start().replace("127.0.0.1", "localhost")
        self.addCleanup(self.new_home.stop)
        self.old_home = Emulator(domain="TESTAPI", username="APIUser", password="123456")
        self.client = odyssee_client.OdysseeClient(
            base_url=self.old_home.start(),
            domain="TESTAPI",
            username="APIUser",
            password="123456",
            max_retries=2,
            backoff_base=0,
            max_requests_per_second=0,
        )
        self.addCleanup(self.old_home.stop)
        self.new_url = new_url

    def moved(self, status):
        self.old_home.set_faults(Faults(moved_to=self.new_url, moved_status=status))

    def test_a_moved_tenant_is_a_typed_error_naming_the_new_location(self):
        for status in (301, 302, 307, 308):
            with self.subTest(status=status):
                self.moved(status)
                with self.assertRaises(odyssee_client.OdysseeMoved) as caught:
                    self.client.get("JobType", query="$top=1")
                error = caught.exception
                self.assertEqual(error.status, status)
                self.assertEqual(error.location, f"{self.new_url}/JobType?$top=1")
                self.assertEqual(error.base_url, self.new_url)
                self.assertIn(f"moved to {self.new_url}/JobType", str(error))
                self.assertEqual(error.retries, 0)
                self.assertNotIsInstance(error, odyssee_client.OdysseeAuthError)
        self.assertEqual(self.new_home.calls, 0)

    def test_a_location_with_a_login_in_it_is_shown_without_it(self):
        with_login = self.new_url.replace("http://", "http://someone:hunter2@")
        self.old_home.set_faults(Faults(moved_to=with_login))
        with self.assertRaises(odyssee_client.OdysseeMoved) as caught:
            self.client.get("JobType")
        self.assertEqual(caught.exception.location, f"{self.new_url}/JobType")
        self.assertNotIn("hunter2", str(caught.exception))

    def test_a_relative_or_encoded_location_still_names_the_new_api_url(self):
        # A relative Location is relative to the URL called; a record's may be encoded.
        old_url = self.client.base_url
        self.old_home.set_faults(Faults(moved_to="/v2/api"))
        with self.assertRaises(odyssee_client.OdysseeMoved) as caught:
            self.client.get("JobType")
        origin = old_url.rsplit("/api", 1)[0]
        self.assertEqual(caught.exception.base_url, f"{origin}/v2/api")
        answer = requests.Response()
        answer.status_code, answer._content = 301, b""
        answer.url = f"{old_url}/Project(abc)"
        answer.headers["Location"] = "https://tenant.wello.solutions/api/Project%28abc%29"
        error = odyssee_client._http_error("GET", "/Project(abc)", answer, 0)
        self.assertEqual(error.base_url, "https://tenant.wello.solutions/api")

    def test_a_write_answered_with_a_redirect_is_not_sent_anywhere_else(self):
        created_before = len(self.new_home.tables["Jobs"])
        for status in (301, 302, 303, 307, 308):
            with self.subTest(status=status):
                self.moved(status)
                with self.assertRaises(odyssee_client.OdysseeMoved):
                    self.client.create("Jobs", {"id": "6f1c2d7e-1111-4a2b-9c3d-000000000001"})
                with self.assertRaises(odyssee_client.OdysseeMoved):
                    self.client.create("Jobs", {"name": "no client id"})
                with self.assertRaises(odyssee_client.OdysseeMoved):
                    self.client.update("Jobs", "6f1c2d7e-1111-4a2b-9c3d-000000000001", {})
        self.assertEqual(self.new_home.calls, 0)
        self.assertEqual(len(self.new_home.tables["Jobs"]), created_before)

    def test_the_credentials_never_leave_for_the_new_host(self):
        seen = []
        original = self.new_home.handle

        def spy(method, path, query, headers, body):
            seen.append(headers.get("Authorization"))
            return original(method, path, query, headers, body)

        self.new_home.handle = spy
        self.moved(308)
        with self.assertRaises(odyssee_client.OdysseeMoved):
            self.client.get("JobType")
        self.assertEqual(seen, [])

    def test_the_old_home_still_answers_once_the_move_is_over(self):
        self.moved(301)
        with self.assertRaises(odyssee_client.OdysseeMoved):
            self.client.get("JobType")
        self.old_home.set_faults(Faults())
        self.assertIn("value", self.client.get("JobType", query="$top=1"))


if __name__ == "__main__":
    unittest.main()

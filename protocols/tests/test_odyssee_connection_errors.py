"""What "Test connection" tells apart: each failure of a real socket gets its own type."""

import socket
import time
import unittest

from odyssee_emulator import Emulator
from protocols import odyssee_client


def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestConnectionErrors(unittest.TestCase):
    def client(self, url, password="123456", timeout=5.0):
        return odyssee_client.OdysseeClient(
            base_url=url,
            domain="TESTAPI",
            username="APIUser",
            password=password,
            timeout=timeout,
            max_retries=0,
            max_requests_per_second=0,
        )

    def emulator(self):
        emulator = Emulator(domain="TESTAPI", username="APIUser", password="123456")
        url = emulator.start()
        self.addCleanup(emulator.stop)
        return url

    def test_nothing_listening_is_unreachable(self):
        client = self.client(f"http://127.0.0.1:{closed_port()}/api")
        with self.assertRaises(odyssee_client.OdysseeUnreachable) as caught:
            client.get("JobType", query="$top=1")
        self.assertNotIsInstance(caught.exception, odyssee_client.OdysseeTimeout)
        self.assertIn("GET /JobType", str(caught.exception))

    def test_unknown_host_is_unreachable(self):
        client = self.client("http://odyssee.invalid/api")
        with self.assertRaises(odyssee_client.OdysseeUnreachable):
            client.get("JobType", query="$top=1")

    def test_a_server_that_never_answers_is_a_timeout(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)  # the kernel accepts; nobody ever answers
        self.addCleanup(listener.close)
        client = self.client(f"http://127.0.0.1:{listener.getsockname()[1]}/api", timeout=0.3)
        started = time.monotonic()
        with self.assertRaises(odyssee_client.OdysseeTimeout):
            client.get("JobType", query="$top=1")
        self.assertLess(time.monotonic() - started, 5)

    def test_tls_to_a_server_without_tls_is_a_tls_error(self):
        url = self.emulator().replace("http://", "https://")
        with self.assertRaises(odyssee_client.OdysseeTLSError) as caught:
            self.client(url).get("JobType", query="$top=1")
        self.assertNotIsInstance(caught.exception, odyssee_client.OdysseeUnreachable)

    def test_wrong_password_is_refused_credentials(self):
        client = self.client(self.emulator(), password="wrong")
        with self.assertRaises(odyssee_client.OdysseeAuthError) as caught:
            client.get("JobType", query="$top=1")
        self.assertEqual(caught.exception.status, 401)
        self.assertNotIn("wrong", str(caught.exception))

    def test_the_right_credentials_connect(self):
        self.assertIn("value", self.client(self.emulator()).get("JobType", query="$top=1"))

    def test_every_typed_failure_is_still_a_connection_error(self):
        # Callers that only know "no usable answer" (retries, stream error kinds) keep working.
        for cls in (
            odyssee_client.OdysseeUnreachable,
            odyssee_client.OdysseeTimeout,
            odyssee_client.OdysseeTLSError,
        ):
            self.assertTrue(issubclass(cls, odyssee_client.OdysseeConnectionError))


if __name__ == "__main__":
    unittest.main()

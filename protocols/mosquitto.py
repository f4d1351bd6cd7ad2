"""A private Mosquitto broker on a free port, for tests and benchmarks.

The configuration is generated in a temporary folder: a listener on 127.0.0.1,
persistence (sessions and queued messages survive a restart), an unbounded
offline queue, and, when users are given, a password file and an ACL file.
With ``tls=True`` the listener speaks TLS only, with a certificate for
127.0.0.1 and localhost signed by a CA generated for this broker alone
(``ca_pem``), as a broker behind a private CA would.
The system broker (port 1883) is shared with others and never touched.
"""

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mosquitto_binary():
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")


class PrivateMosquitto:
    """``users`` is ``{name: password}``; ``acl`` the text of an ACL file (with users only)."""

    def __init__(self, users=None, acl=None, max_queued_messages=0, tls=False):
        self.users = users or {}
        self.acl = acl
        self.max_queued_messages = max_queued_messages
        self.tls = tls
        self.ca_pem = None
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="cas-mosquitto-"))
        self.process = None
        self._write_configuration()

    def _make_certificates(self):
        """A CA and a server certificate it signs, for 127.0.0.1 and localhost (openssl)."""

        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.folder)

        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=construction_asset_sync test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost",
        )  # fmt: skip
        (self.folder / "server.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid,issuer\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
        openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "server.crt", "-extfile", "server.ext",
        )  # fmt: skip
        self.ca_pem = (self.folder / "ca.crt").read_text()
        return [
            f"cafile {self.folder}/ca.crt",
            f"certfile {self.folder}/server.crt",
            f"keyfile {self.folder}/server.key",
        ]

    def _write_configuration(self):
        lines = [
            # Started as root, Mosquitto would become the "mosquitto" user, which cannot
            # read this folder: it stays who started it.
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            *(self._make_certificates() if self.tls else []),
            "persistence true",
            f"persistence_location {self.folder}/",
            f"log_dest file {self.folder}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # 0: no limit on what a persistent session queues while its client is away
            # (Mosquitto's default keeps 1,000 and drops the rest).
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 0",
            "persistent_client_expiration 1d",
        ]
        if self.users:
            passwords = self.folder / "passwords"
            passwords.write_text("")
            passwords.chmod(0o600)
            for name, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), name, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = self.folder / "acl"
            acl.write_text(self.acl)
            lines.append(f"acl_file {acl}")
        self.configuration = self.folder / "mosquitto.conf"
        self.configuration.write_text("\n".join(lines) + "\n")

    def start(self, timeout=10):
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.configuration)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start; see {self.folder}/mosquitto.log")

    def stop(self):
        """SIGTERM: Mosquitto saves its sessions and queued messages, then exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def remove(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self):
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else ""

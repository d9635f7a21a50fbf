"""Run a private Dovecot IMAP server on a loopback port for tests.

Each server has its own config file, TLS certificate (from a trustme CA), passwd-file user
and Maildir, all in its own folder; it listens on 127.0.0.1 only (implicit TLS, no plain
IMAP). When ``dovecot`` is missing or will not start, tests fail under ``CI=true`` and are
skipped elsewhere (a developer machine without dovecot-imapd).

Dovecot will not give mail access to uid 0. Run as root, the mail processes therefore run
as ``nobody``, chrooted (by the root master) into the mail folder, which is what lets them
reach a Maildir below pytest's owner-only temporary folders.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import trustme

from tests.support.ports import free_port
from tests.support.required import find_binary, server_unavailable, stop_process

DOVECOT_CANDIDATES = ("dovecot", "/usr/sbin/dovecot")


def dovecot_binary() -> str | None:
    return find_binary(*DOVECOT_CANDIDATES)


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (the server must be there), skip on a developer machine."""
    server_unavailable("Dovecot", reason, "apt-get install dovecot-imapd")


@dataclass
class DovecotServer:
    """One running private Dovecot; ``maildir`` is the user's INBOX."""

    workdir: Path
    ca: trustme.CA
    user: str = "canary"
    password: str = "c4nary-Secret-pw"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def mailroot(self) -> Path:
        return self.workdir / "mail"

    @property
    def maildir(self) -> Path:
        return self.mailroot / "Maildir"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def log(self) -> Path:
        return self.workdir / "dovecot.log"

    def start(self) -> DovecotServer:
        binary = dovecot_binary()
        if binary is None:
            unavailable("'dovecot' is not installed")
        assert binary is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(self.workdir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.workdir / "cert.pem"))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        (self.workdir / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(5):  # a port picked free can be taken before dovecot binds it
            self.port = free_port()
            conf = self.workdir / "dovecot.conf"
            conf.write_text(self._config())
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [binary, "-F", "-c", str(conf)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    # Its own process group, so that stop() reaches every process of it.
                    start_new_session=True,
                )
            if self._wait_ready(timeout=15.0):
                return self
            last_error = self.log.read_text(errors="replace")[-2000:]
            self.stop()
        unavailable(f"dovecot did not start; its log ends with:\n{last_error}")
        raise AssertionError("unreachable")

    def _config(self) -> str:
        w = self.workdir
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for folder in [self.mailroot, *self.mailroot.rglob("*")]:
                os.chown(folder, nobody.pw_uid, nobody.pw_gid)
            internal = "root"
            mail = (
                f"mail_chroot = {self.mailroot}\nvalid_chroot_dirs = {self.mailroot}\n"
                "mail_location = maildir:/Maildir\n"
            )
            userdb = f"uid={nobody.pw_uid} gid={nobody.pw_gid} home=/"
            login = ""
        else:
            me = pwd.getpwuid(os.getuid())
            internal = me.pw_name
            mail = f"mail_location = maildir:{self.maildir}\n"
            userdb = f"uid={me.pw_uid} gid={me.pw_gid} home={self.mailroot}"
            login = f"default_login_user = {me.pw_name}\n"
        return (
            f"base_dir = {w}/run\n"
            f"state_dir = {w}/state\n"
            f"instance_name = mxflip-test-{self.port}\n"
            f"log_path = {self.log}\n"
            "protocols = imap\n"
            "listen = 127.0.0.1\n"
            "ssl = required\n"
            f"ssl_cert = <{w}/cert.pem\n"
            f"ssl_key = <{w}/key.pem\n"
            "auth_mechanisms = plain\n"
            "auth_failure_delay = 0\n"
            f"default_internal_user = {internal}\n{login}"
            + mail
            + "passdb {\n  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {w}/passwd\n}}\n"
            f"userdb {{\n  driver = static\n  args = {userdb}\n}}\n"
            "service imap-login {\n"
            "  inet_listener imap {\n    port = 0\n  }\n"
            f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.port}\n"
            "    ssl = yes\n  }\n}\n"
            # No auth penalty: after a failed login from an address, anvil delays that
            # address's next logins (2 s, doubling up to 15 s) whatever
            # auth_failure_delay says, so the wrong-password test cost the module's next
            # test 4 s. Without its socket the auth process does not apply one.
            "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
        )

    def _wait_ready(self, timeout: float) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw,
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
                ):
                    if tls.recv(100).startswith(b"* OK"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        # SIGTERM to the master alone makes it wait about a second for its children
        # (anvil, log, auth, …); to the whole group, every process ends at once.
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        stop_process(self.process)  # bounded wait, then SIGKILL
        self.process = None


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[DovecotServer]:
    """A private Dovecot for the test module (import it, with ``ca``, into the module)."""
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"), ca).start()
    yield server
    server.stop()

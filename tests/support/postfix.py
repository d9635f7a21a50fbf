"""A private Postfix instance on a loopback port, for one end-to-end readiness test.

Everything lives in its own folder (config_directory, queue_directory, data_directory,
log file); the system-wide instance is never touched and nothing listens on port 25.
Postfix's daemons drop to the ``postfix`` user and must be able to reach that folder. Under
pytest's ``tmp_path`` they cannot: pytest keeps its root at mode 0700 (and every pytest
run on the machine resets it), so :func:`instance_dir` makes a private 0711 folder in the
system temp directory instead, removed by :meth:`PostfixServer.stop`. When Postfix is
missing or will not start, tests fail under ``CI=true`` and are skipped elsewhere.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.support.ports import free_port
from tests.support.required import server_unavailable

MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def unavailable(reason: str) -> NoReturn:
    """Fail under CI (the server must be there), skip on a developer machine."""
    server_unavailable("Postfix", reason, "apt-get install postfix")


@dataclass
class PostfixServer:
    """One private Postfix. ``domain`` is its local domain; only ``postmaster@`` exists."""

    workdir: Path
    domain: str
    hostname: str
    cert_file: Path
    key_file: Path
    #: More local domains (each with only postmaster@), for multi-domain sessions.
    extra_domains: tuple[str, ...] = ()
    #: More main.cf lines (restrictions a test needs).
    main_cf_extra: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def log_file(self) -> Path:
        return self.workdir / "maillog"

    def _main_cf(self) -> str:
        w = self.workdir
        return f"""\
compatibility_level = 3.6
queue_directory = {w}/spool
data_directory = {w}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {self.hostname}
mydomain = {self.domain}
mydestination = {", ".join((self.domain, *self.extra_domains))}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# nothing is "my network", so loopback clients cannot relay
mynetworks = 192.0.2.1/32
alias_maps =
alias_database =
local_recipient_maps = inline:{{postmaster=ok}}
maillog_file_prefixes = {w}
maillog_file = {self.log_file}
smtpd_banner = $myhostname ESMTP
smtpd_tls_security_level = may
smtpd_tls_cert_file = {self.cert_file}
smtpd_tls_key_file = {self.key_file}
smtp_tls_security_level = none
{self.main_cf_extra}
"""

    def start(self) -> PostfixServer:
        postfix = shutil.which("postfix") or (
            "/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None
        )
        if postfix is None:
            unavailable("'postfix' is not installed")
            raise AssertionError("unreachable")
        if os.geteuid() != 0:
            unavailable("Postfix's master must start as root")
        try:
            owner = pwd.getpwnam("postfix")
        except KeyError:
            unavailable("there is no 'postfix' user (install the Debian package)")
            raise
        for sub in ("etc", "spool", "data"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        os.chown(self.workdir / "data", owner.pw_uid, owner.pw_gid)
        last = ""
        for _ in range(3):  # a port picked free can be taken before master binds it
            self.port = free_port()
            (self.config_dir / "main.cf").write_text(self._main_cf())
            (self.config_dir / "master.cf").write_text(
                MASTER_CF.format(listen=f"127.0.0.1:{self.port}")
            )
            self.process = subprocess.Popen(
                [postfix, "-c", str(self.config_dir), "start-fg"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.workdir,
            )
            if self._wait_ready(20.0):
                return self
            last = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            self.stop()
        unavailable(f"postfix did not start; its log ends with:\n{last}")
        raise AssertionError("unreachable")

    def log_has(self, *texts: str, timeout: float = 10.0) -> bool:
        """Whether the log shows every text; postlogd writes asynchronously, so wait for
        it (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            if all(t in log for t in texts):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        subprocess.run(
            ["postfix", "-c", str(self.config_dir), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def remove(self) -> None:
        """Stop, then delete the instance folder."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def instance_dir() -> Path:
    """A fresh folder the ``postfix`` user may traverse (search only, no listing)."""
    path = Path(tempfile.mkdtemp(prefix="mxflip-postfix-"))
    os.chmod(path, 0o711)
    return path

"""A throwaway OpenSSH server on 127.0.0.1 for the remote-bench tests and benchmarks/remote_overhead.py.

Debian's real `/usr/sbin/sshd -D -f CONFIG` on a free port, with a host key, a client key, an
authorized_keys and a known_hosts made for it, and an ssh config file that the client uses through
`-F` (the user's own ~/.ssh is never read or written). The authorized_keys line sets the session's
HOME to a directory of the test, so the board's per-user cache (~/.cache/edgevit-remote) lands there.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
ALIAS = "edgevit-board"  # the Host alias in the client config: --on takes it like any ~/.ssh/config alias
ALIAS_B = "edgevit-board-b"  # more names for the same server: a fleet of "boards" behind one sshd
ALIAS_C = "edgevit-board-c"


def missing() -> str:
    """Why no test sshd can run here ('' when it can)."""
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen"), shutil.which("scp")):
        if not tool or not Path(tool).exists():
            return "OpenSSH server/client not installed: apt-get install openssh-server openssh-client"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return (path.with_suffix(".pub") if path.suffix else Path(str(path) + ".pub")).read_text().strip()


@dataclass
class SshServer:
    """One sshd and the client files that reach it. `config` is the file to pass as `ssh -F`."""

    root: Path
    port: int = 0
    home: Path = field(init=False)
    config: Path = field(init=False)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "home"
        self.home.mkdir(exist_ok=True)
        self.config = self.root / "ssh_config"
        host_pub = _keygen(self.root / "host_key", "edgevit-test-host")
        client_pub = _keygen(self.root / "client_key", "edgevit-test-client")
        _keygen(self.root / "other_key", "edgevit-test-unknown")  # a key the server does not know
        # HOME of the session: the board's cache lives in this test's directory
        (self.root / "authorized_keys").write_text(f'environment="HOME={self.home}" {client_pub}\n')
        self.port = self.port or free_port()
        (self.root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        user = os.environ.get("USER") or os.popen("id -un").read().strip()
        self.user = user
        self._write_sshd_config()
        self._write_client_config()

    def _write_sshd_config(self) -> None:
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.root / 'host_key'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"PidFile {self.root / 'sshd.pid'}",
            "PermitUserEnvironment yes",  # the HOME= option of the authorized_keys line
            "StrictModes no",  # the key files live under /tmp
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "MaxSessions 50",
            "MaxStartups 50",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",  # one "Accepted publickey" line per connection: multiplexing is countable
        ]
        (self.root / "sshd_config").write_text("\n".join(lines) + "\n")

    def _client_block(self, host: str, key: str, port: int | None = None, known_hosts: str = "known_hosts",
                      extra: tuple[str, ...] = ()) -> str:
        return "\n".join([
            f"Host {host}",
            *extra,
            "  HostName 127.0.0.1",
            f"  Port {port or self.port}",
            f"  User {self.user}",
            f"  IdentityFile {self.root / key}",
            "  IdentitiesOnly yes",
            "  IdentityAgent none",
            f"  UserKnownHostsFile {self.root / known_hosts}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  LogLevel ERROR",
        ]) + "\n"

    def _write_client_config(self) -> None:
        closed = free_port()
        (self.root / "empty_known_hosts").write_text("")
        self.config.write_text(
            self._client_block(ALIAS, "client_key")
            + self._client_block(ALIAS_B, "client_key")
            + self._client_block(ALIAS_C, "client_key")
            + self._client_block("edgevit-wrong-key", "other_key")  # the server refuses this key
            + self._client_block("edgevit-closed-port", "client_key", port=closed)  # nothing listens
            + self._client_block("edgevit-unknown-host", "client_key", known_hosts="empty_known_hosts")
            # through a jump host (the same server): ProxyJump from the config applies untouched
            + self._client_block("edgevit-via-jump", "client_key", extra=(f"  ProxyJump {ALIAS}",))
        )

    def accepted(self) -> int:
        """How many connections sshd has authenticated so far (from its VERBOSE log)."""
        log = self.root / "sshd.log"
        return log.read_text(errors="replace").count("Accepted publickey") if log.exists() else 0

    def start(self) -> "SshServer":
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"),
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def kill(self) -> None:
        """Kill sshd: the listener and the sshd process of every connection (not the commands those
        sessions run: what happens to them is what the fault tests check)."""
        if self.proc is None:
            return
        for pid in _descendants(self.proc.pid):
            if _comm(pid) != "sshd":
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    stop = kill

    def ssh_args(self) -> list[str]:
        return ["-F", str(self.config)]


def _descendants(pid: int) -> list[int]:
    """sshd's session children (they are not in its process group: each session calls setsid)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains `text`."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append((int(d.name), cmd.strip()))
    return found


def python_wrapper(path: Path, argv: list[str], env: dict[str, str] | None = None) -> Path:
    """An executable script that runs `argv + "$@"` with `env` set: a board's "python3" (a python
    without some package, or a foreign-architecture python under qemu-user)."""
    import shlex

    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    path.write_text(f"#!/bin/sh\n{assigns + ' ' if assigns else ''}exec {' '.join(map(shlex.quote, argv))} \"$@\"\n")
    path.chmod(0o755)
    return path

"""Benchmark cases on a board over SSH: `edgevit bench ... --on HOST` and `edgevit doctor --on HOST`.

Transport: the user's own OpenSSH client. The destination goes to `ssh` as given (`user@host`, an
alias of ~/.ssh/config with its keys, agent and ProxyJump; `host:port` becomes `-p port`), with
`BatchMode=yes` so a missing key or an unknown host key fails instead of prompting; host keys are
checked by ssh as configured and never accepted here. One ControlMaster per run carries every
command and copy (`scp` through the same socket) and is closed at the end.

On the board: a per-user cache (`${XDG_CACHE_HOME:-~/.cache}/edgevit-remote`) holds `bundles/` (the
zipapp of `edgevit.bench.bundle`, named by its content hash), `artifacts/<sha256>/` (each artifact,
pushed once) and `runs/<id>/` (this run's per-case files, removed at the end). Every copy lands under
a `.part-<run>` name and is renamed when complete. Each case is one `launch` of the bundle
(`edgevit.bench.board`): a fresh worker process with the profile's threads and runner options, its
peak RSS from wait4 there, clock and temperature around it; the launcher kills the case when it
passes its timeout or the connection drops.

A case that fails (timeout, lost connection, missing runtime) is a failed CaseResult with a one-line
error; the cases measured before it stay. After a lost connection the next case reconnects once;
if that fails, the remaining cases fail with the reason without trying again.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgevit.bench.board import BOARD_PREFIX, case_warnings, governor_warning
from edgevit.bench.profiles import HostInfo
from edgevit.bench.protocol import Protocol
from edgevit.bench.runner import Case, CaseResult, result_from_worker, worker_spec
from edgevit.errors import ConfigError, RemoteError

CACHE_NAME = "edgevit-remote"
_PORT_RE = re.compile(r"^(?P<host>(?:[^@\s/]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^:@\s/\[\]]+)):(?P<port>\d{1,5})$")
_RENAME = ("import os, shutil, sys\n"
           "try:\n    os.rename(sys.argv[1], sys.argv[2])\nexcept OSError:\n    pass\n"
           "shutil.rmtree(sys.argv[3], ignore_errors=True)\n")
# pip distribution of a runtime where it differs from the runtime key
_WHEELS = {"torchscript-lite": "torch", "coreml": "coremltools"}


# ---------------------------------------------------------------- the destination
@dataclass(frozen=True)
class SshTarget:
    """A board: the ssh destination plus how to run python and where its cache is."""

    destination: str  # user@host, host:port, user@host:port or an ~/.ssh/config alias
    ssh_config: Path | None = None  # passed as `ssh -F` (default: the user's ~/.ssh/config)
    python: str = "python3"  # the board's python (a name on its PATH or an absolute path)
    cache: str = ""  # the board's cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/edgevit-remote)
    name: str = ""  # how results name the board (fleet inventory name), default the destination
    options: tuple[str, ...] = ()  # extra `-o KEY=VALUE` for ssh and scp
    connect_timeout: int = 10

    def __post_init__(self) -> None:
        d = self.destination
        if not d or d.startswith("-") or any(c.isspace() for c in d):
            raise ConfigError(f"--on takes an ssh destination (user@host, host:port or an ~/.ssh/config alias), "
                              f"got {d!r}")
        if not self.python or any(c.isspace() for c in self.python):
            raise ConfigError(f"the board's python must be a command name or a path without spaces, got "
                              f"{self.python!r}")
        if self.cache and not (self.cache.startswith("/") or self.cache.startswith("~/")):
            raise ConfigError(f"the board cache must be an absolute path or start with ~/, got {self.cache!r}")

    @property
    def label(self) -> str:
        return self.name or self.destination

    @property
    def described(self) -> str:
        """The name and, when it differs, the destination: what a connection error names."""
        return self.destination if self.name in ("", self.destination) else f"{self.name} ({self.destination})"

    def host_port(self) -> tuple[str, int | None]:
        """(destination for ssh, port) with `host:port` split; everything else passes through."""
        m = _PORT_RE.match(self.destination)
        if m and not self.destination.startswith("ssh://"):
            return m["host"], int(m["port"])
        return self.destination, None


# ---------------------------------------------------------------- one SSH connection
def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def ssh_failure(label: str, stderr: str) -> str:
    """One line for a failed connection, with the fix where ssh's message names a known cause."""
    line = _last_line(stderr) or "ssh exited without a message"
    if "Permission denied" in line:
        hint = "the board refused the key: check IdentityFile / the agent in ~/.ssh/config and its authorized_keys"
    elif "Host key verification failed" in line or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        hint = ("its host key is unknown or changed: connect once with `ssh` and check the fingerprint "
                "(edgevit never accepts host keys)")
    else:
        hint = ""
    return f"cannot connect to {label}: {line}" + (f" ({hint})" if hint else "")


class SshConnection:
    """One OpenSSH ControlMaster to a board, reused by every command and copy of a run."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self.host, self.port = target.host_port()
        self._dir: Path | None = None
        self._master: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        assert self._dir is not None, "connection not open"
        return str(self._dir / "m")

    def _common(self, *, scp: bool = False) -> list[str]:
        t = self.target
        args = ["-F", str(t.ssh_config)] if t.ssh_config else []
        args += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={t.connect_timeout}",
                 "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        if self.port:
            args += ["-P" if scp else "-p", str(self.port)]
        for opt in t.options:
            args += ["-o", opt]
        return args

    def _client(self, *, scp: bool = False) -> list[str]:
        return [*self._common(scp=scp), "-o", f"ControlPath={self.socket}", "-o", "ControlMaster=no"]

    def open(self) -> None:
        """Start the master and wait until it is authenticated, or raise RemoteError with ssh's reason."""
        if shutil.which("ssh") is None:
            raise RemoteError("the OpenSSH client `ssh` is not installed here (apt-get install openssh-client)")
        base = "/tmp" if Path("/tmp").is_dir() else None  # a short path: unix sockets allow ~100 bytes
        self._dir = Path(tempfile.mkdtemp(prefix="evssh-", dir=base))
        err_path = self._dir / "master.err"
        with open(err_path, "wb") as err:
            self._master = subprocess.Popen(
                ["ssh", *self._common(), "-o", f"ControlPath={self.socket}", "-o", "ControlMaster=yes",
                 "-o", "ControlPersist=no", "-N", "-T", "--", self.host],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + self.target.connect_timeout + 10
        while time.monotonic() < deadline:
            if self._master.poll() is not None:
                msg = ssh_failure(self.target.described, err_path.read_text(errors="replace"))
                self.close()
                raise RemoteError(msg)
            if Path(self.socket).exists() and self.alive():
                return
            time.sleep(0.02)
        self.close()
        raise RemoteError(f"cannot connect to {self.target.described}: no answer within "
                          f"{self.target.connect_timeout + 10} s")

    def alive(self) -> bool:
        """Whether the master still holds the connection."""
        if self._master is None or self._master.poll() is not None or self._dir is None:
            return False
        proc = subprocess.run(["ssh", *self._client(), "-O", "check", "--", self.host], capture_output=True,
                              timeout=10)
        return proc.returncode == 0

    def command(self, command: str) -> list[str]:
        """The local argv that runs a shell command on the board through the master."""
        if self._dir is None:
            raise RemoteError(f"not connected to {self.target.label}")
        return ["ssh", *self._client(), "-T", "--", self.host, command]

    def run(self, command: str, *, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the board; RemoteError when ssh itself fails (exit 255)."""
        try:
            proc = subprocess.run(self.command(command), capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.target.label}: no answer within {timeout:.0f} s to {command.split()[0]}") from None
        if proc.returncode == 255:
            raise RemoteError(f"connection to {self.target.label} failed: {_last_line(proc.stderr) or 'ssh exit 255'}")
        return proc

    def start(self, command: str, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
        """Start a command whose stdin stays open: the board side sees EOF when it closes or drops."""
        return subprocess.Popen(self.command(command), stdin=subprocess.PIPE, stdout=stdout, stderr=stderr)

    def push(self, sources: list[Path], remote_dir: str, *, timeout: float = 1800.0) -> None:
        """Copy files/directories into an existing directory of the board (scp through the master)."""
        host = self.host if not (":" in self.host and not self.host.startswith("[")) else f"[{self.host}]"
        for legacy in (False, True):  # SFTP first; the legacy protocol for servers without the sftp subsystem
            target = f"{host}:{shlex.quote(remote_dir) + '/' if legacy else remote_dir + '/'}"
            cmd = ["scp", "-q", "-r", *(["-O"] if legacy else []), *self._client(scp=True), "--",
                   *map(str, sources), target]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                return
            if not self.alive():
                break
        raise RemoteError(f"copy to {self.target.label}:{remote_dir} failed: {_last_line(proc.stderr)}")

    def close(self) -> None:
        """Stop the master (`-O exit`, then the process) and remove the socket directory."""
        if self._master is not None:
            if self._master.poll() is None and self._dir is not None:
                subprocess.run(["ssh", *self._client(), "-O", "exit", "--", self.host], capture_output=True,
                               timeout=10)
                try:
                    self._master.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._master.kill()
                    self._master.wait()
            self._master = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


# ---------------------------------------------------------------- helpers
def tree_sha256(paths: list[Path]) -> str:
    """sha256 over (relative name, file sha256) of every file of the given files/directories."""
    from edgevit.artifact import artifact_files as files_of
    from edgevit.artifact import artifact_sha256

    h = hashlib.sha256()
    for top in sorted(paths):
        for f in files_of(top):
            rel = f.relative_to(top.parent).as_posix()
            h.update(rel.encode() + b"\0" + artifact_sha256(f).encode() + b"\0")
    return h.hexdigest()


def artifact_files(path: Path) -> list[Path]:
    """What a runner needs of an artifact: the file or folder, and a bare ncnn .param's .bin beside it."""
    if path.suffix == ".param" and path.with_suffix(".bin").is_file():
        return [path, path.with_suffix(".bin")]
    return [path]


def _prefixed(stdout: str) -> dict[str, Any] | None:
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(BOARD_PREFIX)), None)
    return json.loads(line[len(BOARD_PREFIX):]) if line else None


def _home_expr(path: str) -> str:
    """A path for the board's shell: quoted, with a leading ~/ meaning the board's $HOME (not this one's)."""
    return '"$HOME"' + shlex.quote(path[1:]) if path.startswith("~/") else shlex.quote(path)


def board_package(runtime: str) -> str:
    return _WHEELS.get(runtime, runtime)


# ---------------------------------------------------------------- the executor
@dataclass
class Pushed:
    kind: str  # bundle | artifact
    name: str
    bytes: int


@dataclass
class RemoteExecutor:
    """Runs cases on one board (see the module docstring); use as a context manager."""

    target: SshTarget
    cooldown_s: float = 0.0  # idle time before each case but the first (benchmark hygiene)
    lock_wait_s: float = 30.0  # how long a case waits for the board lock held by another run
    sample_s: float = 0.5  # clock/temperature sampling period during a case
    local_cache: Path | None = None  # where the bundle is built (default: edgevit's cache)
    facts: dict[str, Any] = field(default_factory=dict)
    pushed: list[Pushed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = SshConnection(self.target)
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self._present: set[str] = set()
        self._cases = 0
        self._lost = ""
        self._dead = ""
        self.python = self.target.python
        self.cache = ""
        self.kernel_arch = ""
        self.bundle_path = ""
        self._current: subprocess.Popen[bytes] | None = None

    # -- lifecycle
    def __enter__(self) -> "RemoteExecutor":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect, find the board's python and cache, push the bundle if missing, read its facts."""
        from edgevit.bench.bundle import build_bundle

        bundle = build_bundle(self.local_cache)
        self.conn.open()
        try:
            self._probe()
            self.bundle_path = f"{self.cache}/bundles/{bundle.path.name}"
            self._ensure_pushed("bundle", [bundle.path], self.bundle_path, bundle.sha256[:16], single_file=True)
            self.facts = self._read_facts()
        except BaseException:
            self.conn.close()
            raise

    def _probe(self) -> None:
        py = _home_expr(self.target.python)
        cache = self.target.cache
        cache_expr = '"${XDG_CACHE_HOME:-$HOME/.cache}/' + CACHE_NAME + '"' if not cache else _home_expr(cache)
        proc = self.conn.run(f"printf 'EDGEVIT_PROBE %s\\n' \"$(uname -m)\" \"$(command -v {py} || true)\" "
                             f"{cache_expr}", timeout=60)
        lines = [ln[len("EDGEVIT_PROBE "):] for ln in proc.stdout.splitlines() if ln.startswith("EDGEVIT_PROBE ")]
        if len(lines) != 3:
            raise RemoteError(f"{self.target.label}: unexpected answer from its shell "
                              f"({_last_line(proc.stderr or proc.stdout) or 'nothing'}); a POSIX sh login shell is needed")
        self.kernel_arch, found, self.cache = lines
        if not found:
            raise RemoteError(f"{self.target.label} has no {self.target.python} on its PATH: install python3 there "
                              "(e.g. sudo apt-get install python3 python3-numpy) or pass --remote-python PATH")
        self.python = found if found.startswith("/") else self.target.python
        self.run_dir = f"{self.cache}/runs/{self.run_id}"
        self.conn.run(f"mkdir -p {shlex.quote(self.cache)}/bundles {shlex.quote(self.cache)}/artifacts "
                      f"{shlex.quote(self.run_dir)}")

    def _read_facts(self) -> dict[str, Any]:
        proc = self.conn.run(f"exec {shlex.quote(self.python)} {shlex.quote(self.bundle_path)} facts", timeout=300)
        data = _prefixed(proc.stdout)
        if data is None:
            why = _last_line(proc.stderr) or f"exit code {proc.returncode}"
            raise RemoteError(f"{self.target.label}: {self.python} cannot run the edgevit bundle ({why}); "
                              "it needs Python >= 3.9")
        if data.get("bundle_error"):
            raise RemoteError(f"{self.target.label}: {data['bundle_error']}")
        return data

    def close(self) -> None:
        """Kill whatever this run left on the board, remove its run directory, close the master."""
        try:
            if self.conn.alive():
                self.conn.run(f"exec {shlex.quote(self.python)} {shlex.quote(self.bundle_path)} cleanup "
                              f"{shlex.quote(self.run_dir)} {shlex.quote(self.cache)}", timeout=60)
        except (RemoteError, AttributeError):
            pass
        finally:
            self.conn.close()

    # -- facts seen by plan/run_plan (edgevit.bench.executor.Executor)
    @property
    def emulated(self) -> bool:
        """The board's python reports another machine than its shell: it runs under qemu-user."""
        return bool(self.facts) and self.facts.get("machine") != self.kernel_arch

    @property
    def measured_on(self) -> str:
        return "emulated" if self.emulated else "remote"

    @property
    def label(self) -> str:
        return f"board {self.target.label}"

    def host(self) -> HostInfo:
        return HostInfo(**{f.name: self.facts.get(f.name) for f in fields(HostInfo)})

    def host_record(self) -> dict[str, Any]:
        keep = ("features", "governor", "freq_mhz", "max_freq_mhz", "thermal_c", "machine", "kernel",
                "python_executable")
        return self.host().to_dict() | {k: self.facts.get(k) for k in keep} | {
            "measured_on": self.measured_on, "destination": self.target.destination, "board": self.target.label,
            "kernel_arch": self.kernel_arch}

    def available_runtimes(self) -> dict[str, str]:
        """Runtime -> '' when the board has it, else why not and what to install there."""
        from edgevit.backends import runtimes

        board = self.facts.get("runtimes")
        out = {}
        for key in runtimes():
            if board is None:
                out[key] = (f"the runners cannot load on the board ({self.facts.get('runtimes_error')}): "
                            f"install numpy there (edgevit doctor --on {self.target.destination})")
            elif key not in board:
                out[key] = "this runtime is not in the board's edgevit bundle"
            elif board[key]["available"]:
                out[key] = ""
            elif "not installed" in board[key]["reason"]:  # the board's fix is not the local pip extra
                reason = board[key]["reason"].split(":")[0]
                out[key] = (f"{reason} on the board: {self.python} -m pip install {board_package(key)} there "
                            f"(edgevit doctor --on {self.target.destination})")
            else:
                out[key] = f"{board[key]['reason']} (on the board)"
        return out

    def versions(self) -> dict[str, str]:
        out = {"python": str(self.facts.get("python", "")), "edgevit": str(self.facts.get("edgevit", ""))}
        if self.facts.get("numpy"):
            out["numpy"] = self.facts["numpy"]
        for key, r in (self.facts.get("runtimes") or {}).items():
            if r["available"] and r["version"]:
                out[key] = r["version"]
        return out

    def load_average(self) -> tuple[float, float, float] | None:
        try:
            text = self.conn.run("cat /proc/loadavg", timeout=30).stdout.split()
            return (float(text[0]), float(text[1]), float(text[2]))
        except (RemoteError, ValueError, IndexError):
            return None

    def where(self) -> dict[str, Any]:
        return {"name": self.target.label, "destination": self.target.destination, "python": self.python,
                "cache": self.cache, "kernel_arch": self.kernel_arch, "emulated": self.emulated,
                "pushed": [p.__dict__ for p in self.pushed], "cooldown_s": self.cooldown_s}

    def warnings(self) -> list[str]:
        out = []
        if self.emulated:
            out.append(f"EMULATED: {self.label}'s python runs as {self.facts.get('machine')} under qemu-user on a "
                       f"{self.kernel_arch} machine: these results prove the artifact runs there; their timings "
                       "and memory are the emulator's, never a device's")
        gov = governor_warning(self.facts.get("governor") or {})
        if gov and not self.emulated:
            out.append(gov)
        return out

    # -- pushing
    def _ensure_pushed(self, kind: str, sources: list[Path], remote: str, name: str, *,
                       single_file: bool = False) -> None:
        """Copy `sources` to `remote` (a file when single_file, else a folder) unless it is there."""
        if remote in self._present:
            return
        q = shlex.quote(remote)
        if self.conn.run(f"test -e {q} && echo present || true").stdout.strip() != "present":
            part = f"{remote}.part-{self.run_id}"
            qp = shlex.quote(part)
            self.conn.run(f"mkdir -p {qp}")
            self.conn.push(sources, part)
            src = f"{part}/{sources[0].name}" if single_file else part
            # os.rename is atomic and never nests a folder into one that another run finished first
            # (mv would); the loser's copy is dropped
            self.conn.run(f"{shlex.quote(self.python)} -c {shlex.quote(_RENAME)} {shlex.quote(src)} {q} {qp}")
            size = sum((f.stat().st_size for s in sources for f in (s.rglob("*") if s.is_dir() else [s])
                        if f.is_file()))
            self.pushed.append(Pushed(kind, name, size))
        self._present.add(remote)

    def _artifact(self, case: Case) -> str:
        """The artifact's path on the board, pushed there first if missing."""
        local = Path(case.artifact)
        files = artifact_files(local)
        digest = case.artifact_sha256 if (local.is_file() and case.artifact_sha256 and len(files) == 1) \
            else tree_sha256(files)
        folder = f"{self.cache}/artifacts/{digest}"
        self._ensure_pushed("artifact", files, folder, local.name)
        return f"{folder}/{local.name}"

    # -- running
    def _reconnect(self) -> None:
        if self._dead:
            raise RemoteError(self._dead)
        if not self._lost:
            return
        try:
            self.conn.close()
            self.conn.open()
            self.conn.run(f"mkdir -p {shlex.quote(self.run_dir)}")
            self._lost = ""
        except RemoteError as exc:
            self._dead = f"not run: {self._lost}; reconnecting failed: {exc}"
            raise RemoteError(self._dead) from None

    def run_case(self, case: Case, protocol: Protocol, *, timeout_s: float = 900.0) -> CaseResult:
        """Measure one case on the board (never raises for a failing case: the error is its result)."""
        started = time.perf_counter()

        def failed(msg: str) -> CaseResult:
            return CaseResult(case, False, msg, wall_s=time.perf_counter() - started)

        try:
            self._reconnect()
            why = self.available_runtimes().get(case.runtime, f"runtime {case.runtime} is unknown to this edgevit")
            if why:
                return failed(f"{case.runtime}: {why}")
            remote_artifact = self._artifact(case)
        except RemoteError as exc:
            return failed(str(exc))
        if self._cases and self.cooldown_s > 0:
            time.sleep(self.cooldown_s)
        self._cases += 1
        name = f"c{self._cases:03d}"
        spec = worker_spec(case, protocol, artifact=remote_artifact)
        args = {"run_dir": self.run_dir, "name": name, "timeout": f"{timeout_s:g}", "python": self.python,
                "bundle": self.bundle_path, "lock": f"{self.cache}/board.lock", "lock_wait": f"{self.lock_wait_s:g}",
                "sample_s": f"{self.sample_s:g}", "spec": json.dumps(spec)}
        command = (f"exec {shlex.quote(self.python)} {shlex.quote(self.bundle_path)} launch "
                   + " ".join(shlex.quote(f"{k}={v}") for k, v in args.items()))
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self._current = self.conn.start(command, out, err)
            try:
                proc.wait(timeout=timeout_s + self.lock_wait_s + 60)
                timed_out = False
            except subprocess.TimeoutExpired:  # the board did not answer: close the channel (the launcher
                timed_out = True  # then kills the case) and clean up by pid file as well
                proc.kill()
                proc.wait()
            except BaseException:  # Ctrl-C: closing the channel ends the case on the board
                proc.kill()
                proc.wait()
                raise
            finally:
                self._current = None
                if proc.stdin:
                    proc.stdin.close()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if self._dead:  # cancelled while it ran
            self._kill_leftovers()
            return failed(self._dead.replace("not run: ", "stopped: ", 1))
        if timed_out:
            self._kill_leftovers()
            return failed(f"timed out after {timeout_s:.0f} s (the board stopped answering; its processes were killed)")
        data = _prefixed(stdout)
        if data is None:
            if not self.conn.alive():
                self._lost = f"connection to {self.target.label} lost during {case.id}" + (
                    f" ({_last_line(stderr)})" if _last_line(stderr) else "")
                return failed(self._lost)
            return failed(f"the board's launcher failed: {_last_line(stderr) or f'ssh exit {proc.returncode}'}")
        if data.get("error"):
            return failed(data["error"])
        result = result_from_worker(case, data["worker_line"], data["stderr_tail"], exit_code=data["exit_code"],
                                    peak_rss_mb=round(data["rss_kb"] / 1024, 2), wall_s=data["wall_s"],
                                    timed_out=timeout_s if data["timed_out"] else None)
        result.conditions = {k: data[k] for k in ("before", "during", "after")}
        result.warnings += case_warnings(data["before"], data["during"], data["after"],
                                         self.facts.get("governor") or {})
        return result

    def cancel(self, reason: str = "interrupted") -> None:
        """Stop: the running case loses its channel (the board kills it), later cases are not run."""
        self._dead = f"not run: {reason}"
        proc = self._current
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _kill_leftovers(self) -> None:
        try:
            if not self.conn.alive():
                return
            self.conn.run(f"exec {shlex.quote(self.python)} {shlex.quote(self.bundle_path)} cleanup "
                          f"{shlex.quote(self.run_dir)}", timeout=60)
        except RemoteError:
            self._lost = self._lost or f"connection to {self.target.label} lost"


# ---------------------------------------------------------------- doctor --on
def install_commands(facts: dict[str, Any], python: str, local_versions: dict[str, str]) -> list[str]:
    """The exact commands that give a board what `edgevit bench --on` needs (numpy and its runtime):
    onnxruntime where it has wheels (aarch64, x86_64), ncnn on armv7l (no ORT or numpy wheels on PyPI).
    Pinned to this machine's versions, so the board runs what the artifacts were exported and
    verified against."""
    arch = str(facts.get("arch", ""))
    runtimes = facts.get("runtimes") or {}
    have = {k for k, r in runtimes.items() if r.get("available")}
    want = "ncnn" if arch.startswith("armv7") else "onnxruntime"
    cmds: list[str] = []
    apt: list[str] = []
    pip: list[str] = []
    if not facts.get("numpy"):
        if arch.startswith("armv7"):
            apt.append("python3-numpy")  # PyPI has no armv7 numpy wheel
        else:
            pip.append(f"numpy=={local_versions['numpy']}" if local_versions.get("numpy") else "numpy")
    if want not in have:
        pip.append(f"{want}=={local_versions[want]}" if local_versions.get(want) else want)
    if not apt and not pip:
        return []
    if not facts.get("pip"):
        apt += ["python3-pip", "python3-venv"]
    if apt:
        cmds.append("sudo apt-get install -y " + " ".join(apt))
    if pip:
        no_deps = " --no-deps" if want == "ncnn" and arch.startswith("armv7") else ""  # its deps lack armv7 wheels
        if facts.get("externally_managed") and not facts.get("in_venv"):
            venv = "~/.venvs/edgevit"
            cmds.append(f"{python} -m venv --system-site-packages {venv}")
            cmds.append(f"{venv}/bin/python -m pip install{no_deps} " + " ".join(shlex.quote(p) for p in pip))
            cmds.append(f"# then: edgevit bench ... --remote-python '{venv}/bin/python'  (quoted: the board's ~)")
        else:
            user = "" if facts.get("in_venv") else " --user"
            cmds.append(f"{python} -m pip install{user}{no_deps} " + " ".join(shlex.quote(p) for p in pip))
    return cmds


def inspect_board(target: SshTarget, *, local_cache: Path | None = None) -> dict[str, Any]:
    """What `edgevit doctor --on` reports: the board's facts, its runtimes, matching profiles, the fix."""
    from edgevit.bench.api import versions as local_versions
    from edgevit.bench.profiles import host_mismatches, list_profiles

    with RemoteExecutor(target, local_cache=local_cache) as ex:
        facts = dict(ex.facts)
        host = ex.host()
        emulated, python = ex.emulated, ex.python
    profiles = [p.name for p in list_profiles() if not p.detected and not host_mismatches(p, host)]
    return {"board": target.label, "destination": target.destination, "python": python, "emulated": emulated,
            "facts": facts, "profiles": profiles,
            "install": install_commands(facts, python, local_versions())}

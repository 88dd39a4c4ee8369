"""`edgevit bench --on HOST` against a real OpenSSH server on 127.0.0.1 (Debian's sshd, throwaway keys).

The board is this machine reached through sshd: the whole path (push, run, fetch, parse), one SSH
connection per run, nothing pushed twice, no temporary file left in the board cache, and each fault
(connection killed mid-run, a host that refuses, a board without the runtime, a case past its timeout)
giving its one-line error while the cases measured before it are kept and nothing keeps running.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgevit.bench import load_results
from edgevit.bench.api import plan, run_plan
from edgevit.bench.protocol import Protocol
from edgevit.bench.remote import RemoteExecutor, SshTarget
from edgevit.bench.tables import write_json
from edgevit.errors import ConfigError, RemoteError
from tests import _sshd
from tests._sshd import ALIAS, SshServer, processes_mentioning, python_wrapper

pytestmark = pytest.mark.skipif(bool(_sshd.missing()), reason=_sshd.missing() or "sshd present")

FAST = Protocol(warmup=1, warmup_seconds=0.0, runs=10)
SLOW = Protocol(warmup=1, warmup_seconds=0.0, runs=5, min_seconds=1.2)  # ~2 s a case: time to break it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield s
    s.kill()


@pytest.fixture(scope="session")
def cas_onnx() -> Path:
    """A real edgevit export (cas_vit_xs fp32 ONNX), cached by content hash in edgevit's cache."""
    from edgevit.cache import get_artifact

    return get_artifact("cas_vit_xs", target="onnx", precision="fp32").path


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small real ONNX models (edgevit's synthetic conv stacks), distinct case ids."""
    from edgevit.bench.synthetic import conv_stack

    d = tmp_path_factory.mktemp("stacks")
    out = []
    for n in (2, 3, 4):
        p = d / f"stack{n}.onnx"
        conv_stack(p, n)
        out.append(p)
    return out


def target(server: SshServer, cache: Path, *, python: str = sys.executable, alias: str = ALIAS) -> SshTarget:
    return SshTarget(alias, ssh_config=server.config, python=python, cache=str(cache))


def _no_process_left(text: str, wait_s: float = 10.0) -> list[tuple[int, str]]:
    deadline = time.monotonic() + wait_s
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _cache_listing(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))


# ---------------------------------------------------------------- the whole path
def test_whole_path_on_the_board(server: SshServer, tmp_path: Path, cas_onnx: Path) -> None:
    cache = tmp_path / "board-cache"
    before = server.accepted()
    with RemoteExecutor(target(server, cache)) as ex:
        p = plan([cas_onnx], profile="arm-a72", threads=1, reference=True, executor=ex)
        res = run_plan(p, FAST)
    assert server.accepted() - before == 1, "one SSH connection (ControlMaster) carries the whole run"
    assert res.ok and [c.case.id for c in res.cases] == ["@reference/onnxruntime/fp32/b1/t1",
                                                         "cas_vit_xs/onnxruntime/fp32/b1/t1"]
    case = res.cases[1]
    assert case.stats["n"] == len(case.samples_ms) >= 10
    assert 0 < case.stats["min"] <= case.stats["median"] <= case.stats["max"] and case.load_ms > 0
    assert case.input_shape == [1, 3, 224, 224] and case.output_shape == [1, 1000]
    # peak RSS of the board's own fresh worker process (wait4 there): above the model, below 1 GB
    assert cas_onnx.stat().st_size / 2**20 < case.peak_rss_mb < 1024
    assert set(case.conditions) == {"before", "during", "after"}
    # the machine's state while it was timed, measured by the worker on the board (/proc there)
    assert case.stability["known"] and case.stability["wall_s"] > 0 and "stable" in case.stability
    # the facts were read on the board, inside the SSH session (its HOME is the one sshd set)
    assert res.setup["measured_on"] == "remote" and res.host["measured_on"] == "remote"
    assert res.setup["board"]["cache"] == str(cache) and res.setup["board"]["name"] == ALIAS
    assert res.host["arch"] == os.uname().machine and res.host["cores"] == len(os.sched_getaffinity(0))
    assert res.host["python_executable"] == sys.executable and res.versions["onnxruntime"]
    # an x86 board is not an A72: the profile check used the board's facts and said so
    assert not res.setup["on_device"] and any("is not the arm-a72 device" in w for w in res.setup["warnings"])
    assert {p["kind"] for p in res.setup["board"]["pushed"]} == {"bundle", "artifact"}
    back = load_results(write_json(res, tmp_path / "out/"))
    assert back.to_dict() == json.loads(json.dumps(res.to_dict())) and back.setup["measured_on"] == "remote"
    assert "edgevit-board" in back.stem()

    # a second run pushes nothing new, and the board cache holds no temporary file
    listing = _cache_listing(cache)
    mtimes = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    with RemoteExecutor(target(server, cache)) as ex:
        res2 = run_plan(plan([cas_onnx], profile="arm-a72", threads=1, reference=True, executor=ex), FAST)
    assert res2.ok and res2.setup["board"]["pushed"] == []
    assert _cache_listing(cache) == listing
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == mtimes
    assert not any(".part-" in name for name in listing)
    assert list((cache / "runs").iterdir()) == []  # per-run files are removed at the end
    assert len(list((cache / "bundles").iterdir())) == 1 and len(list((cache / "artifacts").iterdir())) == 2


def test_config_alias_with_proxyjump(server: SshServer, tmp_path: Path) -> None:
    """The destination goes to ssh untouched: a ProxyJump in the config is honoured (two logins: the
    jump host, then the board through it), still one master for the run."""
    before = server.accepted()
    with RemoteExecutor(target(server, tmp_path / "c", alias="edgevit-via-jump")) as ex:
        assert ex.facts["arch"] == os.uname().machine and ex.load_average() is not None
    assert server.accepted() - before == 2


def test_tilde_paths_mean_the_boards_home(server: SshServer, tmp_path: Path) -> None:
    """`~/...` for the board's python and cache is the board's HOME (sshd set it), not this machine's."""
    py = python_wrapper(server.home / "py3", [sys.executable])
    with RemoteExecutor(SshTarget(ALIAS, ssh_config=server.config, python="~/py3", cache="~/evcache")) as ex:
        assert ex.python == str(py) and ex.cache == str(server.home / "evcache")
        assert ex.facts["python_executable"] == sys.executable


def test_bundle_runs_without_torch(tmp_path: Path, stacks: list[Path]) -> None:
    """The board path imports no torch/onnx: run the bundle's facts and worker with those blocked."""
    import subprocess

    from edgevit.bench.bundle import build_bundle
    from edgevit.bench.worker import RESULT_PREFIX

    bundle = build_bundle(tmp_path / "cache")
    assert not any(m.startswith(("edgevit.models", "edgevit.rewrite", "edgevit.cli")) for m in bundle.modules)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"artifact": str(stacks[0]), "runtime": "onnxruntime", "threads": 1, "batch": 1,
                                "img_size": 56, "protocol": {"runs": 3, "warmup": 1}, "options": {}}))
    blocker = (
        "import runpy, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'yaml', 'rich', 'typer'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for args, prefix in ((["facts"], "EDGEVIT_BOARD_RESULT "), (["worker", str(spec)], RESULT_PREFIX)):
        proc = subprocess.run([sys.executable, "-c", blocker, str(bundle.path), *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=120)
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(prefix))
        data = json.loads(line[len(prefix):])
        assert data.get("ok", True) and not data.get("bundle_error"), (data, proc.stderr[-2000:])


# ---------------------------------------------------------------- faults
def _kill_during(ex: RemoteExecutor, name: str, kill) -> threading.Thread:
    """Call kill() once the board runs case `name` (its worker process exists)."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if processes_mentioning(f"{ex.run_dir}/{name}.spec.json"):
                time.sleep(0.5)
                kill()
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_master_killed_mid_run_keeps_results_and_reconnects(server: SshServer, tmp_path: Path,
                                                            stacks: list[Path]) -> None:
    cache = tmp_path / "board-cache"
    with RemoteExecutor(target(server, cache)) as ex:
        watcher = _kill_during(ex, "c002", lambda: os.kill(ex.conn._master.pid, signal.SIGKILL))
        res = run_plan(plan(stacks, threads=1, executor=ex), SLOW)
        watcher.join()
    ok, lost, after = res.cases
    assert ok.ok and len(ok.samples_ms) >= 5
    assert not lost.ok and "connection to edgevit-board lost during stack3" in lost.error and "\n" not in lost.error
    assert after.ok, after.error  # the next case reconnected
    assert _no_process_left(str(cache)) == []
    back = load_results(write_json(res, tmp_path / "r.json"))
    assert back.cases[0].samples_ms == ok.samples_ms  # what was measured before the drop is written


def test_sshd_killed_mid_run_fails_the_rest_in_one_line(tmp_path: Path, stacks: list[Path]) -> None:
    server = SshServer(tmp_path / "sshd").start()
    cache = tmp_path / "board-cache"
    try:
        with RemoteExecutor(target(server, cache)) as ex:
            watcher = _kill_during(ex, "c002", server.kill)
            res = run_plan(plan(stacks, threads=1, executor=ex), SLOW)
            watcher.join()
    finally:
        server.kill()
    ok, lost, rest = res.cases
    assert ok.ok and not lost.ok and "lost during stack3" in lost.error
    assert not rest.ok and rest.error.startswith("not run: connection to edgevit-board lost")
    assert "reconnecting failed: cannot connect to edgevit-board" in rest.error and "refused" in rest.error
    assert all("\n" not in c.error for c in res.cases)
    # the launcher saw its channel close and killed the worker: nothing keeps running on the board
    assert _no_process_left(str(cache)) == []


_CTRL_C_CHILD = """
import json, sys
from pathlib import Path
from edgevit.bench.api import plan, run_plan
from edgevit.bench.protocol import Protocol
from edgevit.bench.remote import RemoteExecutor, SshTarget
from edgevit.bench.tables import write_json
cfg = json.loads(sys.argv[1])
board = SshTarget(cfg["alias"], ssh_config=cfg["ssh_config"], python=sys.executable, cache=cfg["cache"])
with RemoteExecutor(board) as ex:
    res = run_plan(plan([Path(p) for p in cfg["stacks"]], threads=1, executor=ex), Protocol(**cfg["protocol"]))
write_json(res, Path(cfg["out"]))
"""


def test_ctrl_c_keeps_what_was_measured(server: SshServer, tmp_path: Path, stacks: list[Path]) -> None:
    """Ctrl-C as a terminal sends it (SIGINT to the whole foreground process group) while the board runs
    the second case: the first case's numbers are written, the rest say why, nothing keeps running."""
    cache, out = tmp_path / "board-cache", tmp_path / "r.json"
    cfg = {"alias": ALIAS, "ssh_config": str(server.config), "cache": str(cache), "out": str(out),
           "stacks": [str(p) for p in stacks],
           "protocol": {"warmup": 1, "warmup_seconds": 0.0, "runs": 5, "min_seconds": 1.2}}
    child = subprocess.Popen([sys.executable, "-c", _CTRL_C_CHILD, json.dumps(cfg)], cwd=Path(__file__).parents[1],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not [c for _, c in processes_mentioning("c002.spec.json") if str(cache) in c]:
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0].decode()
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(child.pid, signal.SIGINT)
    log = child.communicate(timeout=120)[0].decode()
    assert child.returncode == 0 and out.exists(), log
    res = load_results(out)
    assert res.cases[0].ok and len(res.cases[0].samples_ms) >= 5
    assert [c.error for c in res.cases[1:]] == ["not run: interrupted"] * 2, log
    assert _no_process_left(str(cache)) == []
    assert list((cache / "runs").iterdir()) == []


@pytest.mark.parametrize(("alias", "expected"), [
    ("edgevit-wrong-key", "Permission denied (publickey). (the board refused the key"),
    ("edgevit-closed-port", "Connection refused"),
    ("edgevit-unknown-host", "Host key verification failed. (its host key is unknown or changed"),
])
def test_host_that_refuses(server: SshServer, tmp_path: Path, alias: str, expected: str) -> None:
    with pytest.raises(RemoteError) as err:
        RemoteExecutor(target(server, tmp_path / "c", alias=alias)).open()
    msg = str(err.value)
    assert msg.startswith(f"cannot connect to {alias}: ") and expected in msg and "\n" not in msg
    assert (server.root / "empty_known_hosts").read_text() == ""  # an unknown host key is never accepted


def test_board_without_the_runtime(server: SshServer, tmp_path: Path, stacks: list[Path]) -> None:
    """A board python with numpy and no onnxruntime: that case fails in one line naming the fix."""
    import numpy

    site = tmp_path / "site"
    site.mkdir()
    np_dir = Path(numpy.__file__).parent
    for d in (np_dir, np_dir.with_name("numpy.libs"), *np_dir.parent.glob("numpy-*.dist-info")):
        if d.exists():
            (site / d.name).symlink_to(d)
    py = python_wrapper(tmp_path / "python3", [sys.executable, "-S"], {"PYTHONPATH": str(site)})
    cache = tmp_path / "board-cache"
    with RemoteExecutor(target(server, cache, python=str(py))) as ex:
        assert ex.available_runtimes()["onnxruntime"].startswith("onnxruntime is not installed on the board")
        res = run_plan(plan(stacks[:1], threads=1, executor=ex), FAST)
    (case,) = res.cases
    assert not case.ok and "\n" not in case.error
    assert case.error.startswith(f"onnxruntime: onnxruntime is not installed on the board: {py} -m pip install "
                                 "onnxruntime there (edgevit doctor --on edgevit-board)")
    assert res.versions["numpy"] == numpy.__version__ and "onnxruntime" not in res.versions


def test_case_past_its_timeout_is_killed(server: SshServer, tmp_path: Path, stacks: list[Path]) -> None:
    cache = tmp_path / "board-cache"
    endless = Protocol(warmup=1, warmup_seconds=0.0, runs=10**6, max_runs=10**6, min_seconds=3600, max_seconds=3600)
    with RemoteExecutor(target(server, cache)) as ex:
        p = plan(stacks[:2], threads=1, executor=ex)
        started = time.monotonic()
        slow = ex.run_case(p.cases[0], endless, timeout_s=2)
        took = time.monotonic() - started
        assert _no_process_left(str(cache), wait_s=5) == []
        fine = ex.run_case(p.cases[1], FAST, timeout_s=60)
    assert not slow.ok and slow.error == "timed out after 2 s" and took < 20
    assert fine.ok, fine.error  # the board is usable again right away


def test_host_profile_means_the_board(server: SshServer, tmp_path: Path, stacks: list[Path]) -> None:
    """`--device host` (the default) with --on describes the board, from the board's facts."""
    fake = dict(arch="aarch64", cpu="Cortex-A72", cores=4, frequency_ghz=1.8, memory_gb=4.0)
    with RemoteExecutor(target(server, tmp_path / "c")) as ex:
        ex.facts.update(fake)  # as a Pi 4 would report them
        p = plan(stacks[:1], executor=ex)
    assert {k: getattr(p.profile, k) for k in fake} == fake and p.threads == 4 and p.warnings == []


def test_busy_board_is_never_shared(server: SshServer, tmp_path: Path, stacks: list[Path]) -> None:
    """A case waits for the board lock another benchmark holds, then fails rather than measure alongside."""
    import fcntl

    cache = tmp_path / "board-cache"
    with RemoteExecutor(target(server, cache)) as ex:
        ex.lock_wait_s = 1.0
        (case,) = plan(stacks[:1], threads=1, executor=ex).cases
        with open(cache / "board.lock", "a+") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            busy = ex.run_case(case, FAST)
        free = ex.run_case(case, FAST)
    assert not busy.ok and busy.error.startswith("the board is busy: another edgevit case holds its lock")
    assert free.ok


# ---------------------------------------------------------------- the CLI and the gate
def test_cli_bench_on_and_its_errors(server: SshServer, tmp_path: Path, stacks: list[Path]) -> None:
    from typer.testing import CliRunner

    from edgevit.cli import app

    runner = CliRunner()
    common = ["--ssh-config", str(server.config), "--remote-python", sys.executable, "--runs", "5", "--warmup", "1"]
    out = tmp_path / "out"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: two\nthreads: 1\ncases:\n  - artifacts: [{stacks[0]}, {stacks[1]}]\n")
    r = runner.invoke(app, ["bench", "--suite", str(suite), "--on", ALIAS, *common, "--cooldown", "1", "--json",
                            f"{out}/"])
    assert r.exit_code == 0, r.output
    (written,) = out.glob("*.json")
    res = load_results(written)
    assert res.ok and res.setup["measured_on"] == "remote" and res.setup["suite"] == "two"
    assert "on board edgevit-board" in r.output and written.name.startswith("bench_edgevit-board_two_host")
    first, second = res.cases
    assert second.conditions["before"]["time"] - first.conditions["after"]["time"] >= 1.0  # the cool-down
    for argv, expected in (
        (["--on", "edgevit-wrong-key"], "error: cannot connect to edgevit-wrong-key"),
        (["--on", "-oProxyCommand=touch /tmp/x"], "error: --on takes an ssh destination"),
        (["--on", ALIAS, "--fleet", "x.yaml"], "error: --fleet takes profiles"),
    ):
        r = runner.invoke(app, ["bench", str(stacks[0]), *argv, *common])
        assert r.exit_code in (1, 2) and "Traceback" not in r.output
        lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("connecting")]
        assert len(lines) == 1 and lines[0].startswith(expected), r.output


def test_doctor_on_a_board(server: SshServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgevit.bench.remote import inspect_board
    from edgevit.cli import app

    bare = python_wrapper(tmp_path / "python3", [sys.executable, "-S"])  # no numpy, no runtime
    data = inspect_board(target(server, tmp_path / "c", python=str(bare)))
    assert data["facts"]["numpy"] == "" and data["facts"]["runtimes"] is None
    from importlib.metadata import version

    assert any(f"numpy=={version('numpy')} onnxruntime=={version('onnxruntime')}" in c for c in data["install"])
    r = CliRunner().invoke(app, ["doctor", "--on", ALIAS, "--ssh-config", str(server.config), "--remote-python",
                                 sys.executable])
    assert r.exit_code == 0 and "ready:" in r.output and "onnxruntime" in r.output


def test_regress_on_two_board_results_uses_the_board_profile_gate(server: SshServer, tmp_path: Path,
                                                                  stacks: list[Path]) -> None:
    from edgevit.bench.regress import regress

    cache = tmp_path / "board-cache"
    runs = []
    for _ in range(2):
        with RemoteExecutor(target(server, cache)) as ex:
            runs.append(run_plan(plan(stacks[:1], profile="arm-a72", threads=1, executor=ex),
                                 Protocol(warmup=2, warmup_seconds=0.0, runs=30)))
    base, cur = (write_json(r, tmp_path / f"{n}.json") for r, n in zip(runs, ("base", "cur"), strict=True))
    report = regress(cur, base)
    assert report.profile == "arm-a72" and report.tolerance == 0.10 and report.floor_ms == 2.0  # arm-a72's gate
    assert report.baseline_host.startswith("board edgevit-board: ")
    assert {c.verdict for c in report.cases} <= {"ok", "improvement", "regression", "inconclusive"}
    # a board that got 3x slower (and by more than the 2 ms floor) fails the gate like a host would
    slow = load_results(cur)
    for c in slow.cases:
        if not c.case.reference:
            c.samples_ms = [s * 3 + 3 for s in c.samples_ms]
            c.stability = {}  # as if measured on a quiet board (a busy one: tests/test_regress_errors.py)
    report = regress(slow, base)
    assert report.failed and [c.verdict for c in report.cases if c.id.startswith("stack2")] == ["regression"]
    emulated = load_results(cur)
    emulated.setup["measured_on"] = "emulated"
    with pytest.raises(ConfigError, match="measured under emulation"):
        regress(emulated, base)

"""Where benchmark cases run: this machine (`LocalExecutor`) or a board over SSH (`remote.RemoteExecutor`).

Planning and results read the machine through this one seam, so a board's results are the same
record type as a local run's, with the board's facts wherever a local run has this host's: the
profile check and `--strict`, the `host` block, versions, load average and `measured_on`.
"""
from __future__ import annotations

from typing import Any, Protocol as TypingProtocol

from edgevit.bench.profiles import HostInfo
from edgevit.bench.protocol import Protocol
from edgevit.bench.runner import Case, CaseResult

MEASURED_ON = ("local", "remote", "emulated")  # emulated: a board's python under qemu-user, no timing value


class Executor(TypingProtocol):
    """What `plan` and `run_plan` need from the machine the cases run on."""

    measured_on: str  # one of MEASURED_ON
    label: str  # how warnings name the machine: "this host", "board pi@tinker"

    def host(self) -> HostInfo: ...
    def host_record(self) -> dict[str, Any]: ...
    def available_runtimes(self) -> dict[str, str]: ...
    def versions(self) -> dict[str, str]: ...
    def load_average(self) -> tuple[float, float, float] | None: ...
    def where(self) -> dict[str, Any]: ...
    def warnings(self) -> list[str]: ...
    def run_case(self, case: Case, protocol: Protocol, *, timeout_s: float = 900.0) -> CaseResult: ...


class LocalExecutor:
    """This machine: cases run in fresh local processes (`runner.run_case`)."""

    measured_on = "local"
    label = "this host"

    def host(self) -> HostInfo:
        from edgevit.bench.profiles import detect_host

        return detect_host()

    def host_record(self) -> dict[str, Any]:
        return self.host().to_dict()

    def available_runtimes(self) -> dict[str, str]:
        from edgevit.bench.api import available_runtimes

        return available_runtimes()

    def versions(self) -> dict[str, str]:
        from edgevit.bench.api import versions

        return versions()

    def load_average(self) -> tuple[float, float, float] | None:
        from edgevit.bench.profiles import load_average

        return load_average()

    def where(self) -> dict[str, Any]:
        return {}

    def warnings(self) -> list[str]:
        return []

    def run_case(self, case: Case, protocol: Protocol, *, timeout_s: float = 900.0) -> CaseResult:
        from edgevit.bench.runner import run_case

        return run_case(case, protocol, timeout_s=timeout_s)

"""The emulation proofs: edgevit's artifacts run on arm64 and armv7 Python under qemu user-mode emulation.

`harness` builds the Debian rootfs and runs the guest's python; `arm64` and `armv7` are the proofs
(`python -m tests.emulation.arm64 --help`), run by `pytest -m emulation`. Correctness only: emulated
timings are never device timings.
"""

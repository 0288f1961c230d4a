"""Fuzzing the judgement of nvidia-smi's answer: whatever a node's shell prints, a `GpuFact`, quickly.

The answer is another machine's output: any exit status, any text on stdout and stderr, CSV
lines near the queried shape with odd fields. `gpu_fact` must return a fact (never raise), and
a shell's "not recognized" / "not found" answer with a non-zero status is always "not
installed", whatever surrounds it. Each example runs under a time and address-space cap
(tests/bounded.py); bounded: a few seconds per test.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from homelab.vram.gpu_facts import GpuFact, GpuStatus, gpu_fact
from tests.bounded import capped

FUZZ = settings(max_examples=300, deadline=1000, database=None)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
EXIT = st.integers(min_value=-255, max_value=65535)
FIELD = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["[N/A]", "[Not Supported]", "inf", "nan", "-1", "1e308", "0x10", ""]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(str),
)
LINE = st.lists(FIELD, min_size=1, max_size=7).map(", ".join)
CSV = st.lists(LINE, max_size=8).map("\n".join)
NOT_FOUND = st.sampled_from(
    [
        "'nvidia-smi' is not recognized as an internal or external command,\r\noperable program or batch file.",
        "nvidia-smi : The term 'nvidia-smi' is not recognized as the name of a cmdlet, function, script file",
        "bash: line 1: nvidia-smi: command not found",
    ]
)


@FUZZ
@given(exit_status=EXIT, stdout=st.one_of(CSV, st.text(max_size=2000)), stderr=st.text(max_size=500))
def test_any_answer_is_a_fact(exit_status: int, stdout: str, stderr: str) -> None:
    with capped(seconds=2.0, extra_bytes=64 * 2**20):
        fact = gpu_fact("n", T0, exit_status, stdout, stderr)
    assert isinstance(fact, GpuFact)
    assert (fact.status is GpuStatus.OK) == bool(fact.gpus)
    assert fact.status is GpuStatus.OK or fact.detail


@FUZZ
@given(
    exit_status=EXIT.filter(lambda s: s != 0), said=NOT_FOUND, before=st.text(max_size=200), after=st.text(max_size=200)
)
def test_a_shell_not_finding_it_is_not_installed(exit_status: int, said: str, before: str, after: str) -> None:
    fact = gpu_fact("n", T0, exit_status, "", f"{before}\n{said}\n{after}")
    assert (fact.status, fact.detail) == (GpuStatus.NO_NVIDIA_SMI, "nvidia-smi is not installed on this node")

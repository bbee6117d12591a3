"""Run the faults corpus (`pytest -m faults`) and count what each probe got.

    python tools/faults.py            # the whole corpus
    python tools/faults.py -k report  # extra arguments go to pytest

Each corpus row records its outcome (tests/test_bad_input.py: probe): a clean one-line error, a
correct answer, a traceback, a silent wrong answer, a hang (timeout) or an unclean error (wrong
exit code or message). A dedicated test that records none counts as handled correctly when it
passes and as failed otherwise. Exit status: pytest's.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["clean error", "handled correctly", "traceback", "silent wrong answer", "hang", "unclean error",
         "failed", "skipped"]


class Count:
    def __init__(self):
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        if props.get("probe") is False:  # a check of the corpus itself
            return
        recorded = props.get("outcome")
        if report.when == "call" or report.skipped or (report.failed and report.nodeid not in self.outcomes):
            if report.skipped:
                self.outcomes[report.nodeid] = "skipped"
            elif recorded:
                self.outcomes[report.nodeid] = recorded
            else:
                self.outcomes[report.nodeid] = "handled correctly" if report.passed else "failed"


def main(argv: list[str]) -> int:
    count = Count()
    code = pytest.main(["-m", "faults", "-q", "-p", "no:cacheprovider", str(ROOT / "tests"), *argv], plugins=[count])
    tally = Counter(count.outcomes.values())
    print(f"\nfaults corpus: {len(count.outcomes)} probes")
    for kind in ORDER:
        if tally[kind] or kind in ORDER[:5]:
            print(f"  {kind + ':':21} {tally[kind]}")
    for nodeid, outcome in count.outcomes.items():
        if outcome not in ("clean error", "handled correctly"):
            print(f"  {outcome}: {nodeid}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

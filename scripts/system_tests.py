#!/usr/bin/env python3
"""Runs the system tests (e2e/system/*_test.py): the repository's own scripts and docs, run as a
user would, outside `bazel test` because they call Bazel themselves. Run after a build of
//cmd/... (scripts/test.sh does both). Prints each test's result and writes the counts as JSON
({"passed": N, "failed": N, "failures": [...]}) to the file given, for count_tests.py.

  scripts/system_tests.py RESULTS.json [PATTERN]   (PATTERN: a test name's part, to run fewer)
"""
import json
import os
import sys
import time
import unittest

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e", "system")


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())


def selected(suite, pattern):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from selected(item, pattern)
        elif not pattern or pattern in item.id():
            yield item


def main(results_path, pattern=""):
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    tests = list(selected(loader.discover(HERE, pattern="*_test.py", top_level_dir=HERE), pattern))
    start = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Recorder)
    result = runner.run(unittest.TestSuite(tests))
    failures = [t.id() for t, _ in result.failures + result.errors]
    with open(results_path, "w") as f:
        json.dump({"passed": len(result.passed), "failed": len(failures), "failures": failures}, f)
    print("system tests: %d of %d passed (%.0f s)" % (
        len(result.passed), len(result.passed) + len(failures), time.monotonic() - start))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))

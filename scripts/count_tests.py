#!/usr/bin/env python3
"""Counts test cases from one `bazel test` run, and the system tests' results, and prints
`N passed, N failed`.

Reads the run's build event JSON (so only targets of this run count, never stale logs), then
each target's test.xml for its individual cases. A target that failed without a failing case
in its XML (crash, timeout, failed build) counts as one failed case. With --system FILE, the
counts scripts/system_tests.py wrote are added (a missing file: the system tests did not run,
one failure).

  count_tests.py BEP.json TESTLOGS [--system FILE] TARGET...
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def system_counts(path):
    """(passed, failed, failed names) of the system tests' results file."""
    try:
        with open(path) as f:
            r = json.load(f)
        return r["passed"], r["failed"], r.get("failures", [])
    except (OSError, ValueError, KeyError):
        return 0, 1, ["system tests (no results in %s: did they run?)" % path]


def main(bep_path, testlogs, expected_targets, system=None):
    summaries = {}
    with open(bep_path) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            tid = ev.get("id", {})
            if "testSummary" in tid:
                label = tid["testSummary"]["label"]
                summaries[label] = ev.get("testSummary", {}).get("overallStatus", "NO_STATUS")
    passed = failed = 0
    failed_targets = []
    for label in expected_targets:
        status = summaries.get(label)
        if status is None:
            failed += 1
            failed_targets.append(label + " (did not run: build failure?)")
            continue
        pkg, name = label.lstrip("/").split(":")
        xml_path = os.path.join(testlogs, pkg, name, "test.xml")
        cases_passed = cases_failed = 0
        if os.path.exists(xml_path):
            try:
                root = ET.parse(xml_path).getroot()
                for case in root.iter("testcase"):
                    if case.get("status") == "notrun" or case.find("skipped") is not None:
                        continue
                    if case.find("failure") is not None or case.find("error") is not None:
                        cases_failed += 1
                    else:
                        cases_passed += 1
            except ET.ParseError:
                pass
        ok = status in ("PASSED", "FLAKY")
        if not ok and cases_failed == 0:
            cases_failed = 1
            cases_passed = 0
        if ok and cases_passed == 0:
            cases_passed = 1  # a test binary without gtest cases (a shell test)
        if cases_failed:
            failed_targets.append("%s (%s)" % (label, status))
        passed += cases_passed
        failed += cases_failed
    if system:
        sp, sf, names = system_counts(system)
        passed += sp
        failed += sf
        failed_targets += ["system: " + n for n in names]
    for t in failed_targets:
        print("FAILED: " + t)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    args = sys.argv[3:]
    system = None
    if args[:1] == ["--system"]:
        system, args = args[1], args[2:]
    sys.exit(main(sys.argv[1], sys.argv[2], [l for l in args if l], system))

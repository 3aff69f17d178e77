// Test helper: a busybox root filesystem (what the `static` base holds), for sandbox tests
// that must not depend on a base being built.
#pragma once

#include <string>

namespace mentat {

// Builds (once per process) `<TEST_TMPDIR>/busybox-root`: /bin/busybox (static) and a symlink
// per applet, /etc/passwd, /tmp. Returns its path.
std::string BusyboxRoot();

// The escape battery's verdicts (testdata/escape_probe.c, run by the sandbox's and hull's tests):
// every PROBE line says contained, every attack the issue lists was tried, the setuid-root copy
// ran without capabilities, and the probe finished. gtest EXPECTs.
void ExpectEscapeBatteryContained(const std::string& probe_stdout);

}  // namespace mentat

// Test helper: a busybox root filesystem (what the `static` base holds), for sandbox tests
// that must not depend on a base being built.
#pragma once

#include <string>

namespace mentat {

// Builds (once per process) `<TEST_TMPDIR>/busybox-root`: /bin/busybox (static) and a symlink
// per applet, /etc/passwd, /tmp. Returns its path.
std::string BusyboxRoot();

}  // namespace mentat

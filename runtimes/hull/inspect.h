// What `hull inspect` shows of a container besides its record: its live cgroup limits and
// usage, and while it runs the namespaces of its PID 1 and the first of its mounts.
#pragma once

#include "apis/object.h"
#include "runtimes/hull/state.h"

namespace mentat::hull {

// The record as `hull inspect` prints it, with what is live now (a running container's cgroup,
// namespaces and first 12 mounts). `s` is up to date (Refresh).
Json InspectState(const ContainerState& s);

}  // namespace mentat::hull

// The container's root filesystem as `hull run` plans it before clone: the rootfs (a directory
// bound as it is, or a .tar.gz extracted once and overlaid), the volumes, and argv[0] checked
// inside it, so that a manifest's mistake is reported before anything starts.
#pragma once

#include "apis/hull_manifest.h"
#include "runtimes/hull/container.h"
#include "runtimes/hull/state.h"
#include "runtimes/isolation/mounts.h"

namespace mentat::hull {

// Fills `plan` (made by PlanRoot) and the record's root, upper and work. Exit codes: 3 for the
// manifest (rootfs, mounts[i]), 127 when argv[0] is not an executable file in the rootfs, 2
// otherwise.
Outcome<void> PlanContainerRoot(const StateDir& dir, const HullManifest& m, bool rootless, RootPlan& plan,
                                ContainerState& s);

}  // namespace mentat::hull

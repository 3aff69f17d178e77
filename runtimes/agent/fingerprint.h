// What this host offers the scheduler (Node.status.capacity): CPU cores and MHz per core,
// memory and the disk under the agent's data dir, read from /proc and statvfs.
#pragma once

#include <string>

#include "apis/object.h"

namespace mentat {

// {"cpus", "cpu_mhz", "memory_mb", "disk_mb"}; a figure that cannot be read is left out.
Json HostCapacity(const std::string& data_dir);

}  // namespace mentat

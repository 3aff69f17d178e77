// What a Mentat container looks like to Docker: its name, its labels, and the body of
// POST /containers/create built from a TaskConfig (security, ports, volumes, limits). Pure: the
// only things read besides the TaskConfig are the driver's options and the host's AppArmor state.
#pragma once

#include <string>

#include "apis/error.h"
#include "apis/object.h"
#include "runtimes/docker/docker_driver.h"
#include "runtimes/driver.h"

namespace mentat {

// The labels every container Mentat makes carries (CleanupOrphans finds them by node).
inline constexpr const char* kDockerLabelService = "mentat.service";
inline constexpr const char* kDockerLabelAllocation = "mentat.allocation";
inline constexpr const char* kDockerLabelNode = "mentat.node";
inline constexpr const char* kDockerLabelSpecHash = "mentat.spec-hash";
inline constexpr const char* kDockerLabelTask = "mentat.task";
inline constexpr const char* kDockerLabelNamespace = "mentat.namespace";

// The container name of a task: "mentat-" and the task id, made a valid Docker name.
std::string ContainerName(const std::string& task_id);

// "CONTAINER/proto": Docker's key of a port in ExposedPorts and PortBindings.
std::string PortKey(int container, const std::string& proto);

// Builds the POST /containers/create body.
Result<Json> ContainerCreateBody(const TaskConfig& config, const Json& profile,
                                 const DockerDriverOptions& opts);

// The spec with each host volume source realpath()ed on this node; under a profile the
// resolved paths are checked again (CheckDockerRules) and kept out of the agent's data dir.
Result<Json> ResolveVolumeSources(const Json& spec, const Json& profile,
                                  const DockerDriverOptions& opts);

}  // namespace mentat

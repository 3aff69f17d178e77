// The one catalog of drivers (Nomad's plugin catalog): each driver registers itself from its own
// .cc with MENTAT_REGISTER_DRIVER, and the agent and the conformance suite both iterate it, so a
// driver linked in (//runtimes:all_drivers) is run by the agent and tested by the suite alike.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtimes/driver.h"

namespace mentat {

// The node's settings a driver is made with: the agent's, or a test's.
struct DriverContext {
  std::string node_name = "local";
  // The agent's data directory: drivers keep what they build under it (sandbox bases, hull's
  // state); the docker driver keeps containers from mounting it. Empty: none.
  std::string data_dir;
  int64_t core_mhz = 0;          // MHz of one core, for resources.cpu_mhz; 0: unknown
  std::string sandbox_init;      // the sandbox-init binary; empty: found (FindSandboxInit)
  std::string docker_socket;     // dockerd's socket; empty: the driver's default
  std::string docker_publish_ip;  // the host address published ports bind to; "" = all
  std::string hull_state_dir;    // hull's state directory; empty: <data_dir>/hull/state
};

// What a task's program is found in: the host's files, a root filesystem directory
// (spec.rootfs), or an image (spec.image). The conformance suite gives each its shell.
enum class WorkloadRoot { kHost, kRootfs, kImage };

struct DriverRegistration {
  std::string name;  // Driver::Name() of what `make` returns
  WorkloadRoot root = WorkloadRoot::kHost;
  // Makes the driver. A machine that cannot run its tasks still gets one (its fingerprint says
  // why), so the agent reports it; only a broken setup is an error.
  std::function<Result<DriverPtr>(const DriverContext&)> make;
  // OK when this machine can run the driver's tasks; otherwise kFailedPrecondition saying why.
  // Makes no driver.
  std::function<Status(const DriverContext&)> probe;
};

class DriverRegistry {
 public:
  // Adds `registration`; a second driver of the same name is a programming error (aborts).
  // Returns true, for use in a static initializer.
  static bool Register(DriverRegistration registration);
  // Every registered driver, by name.
  static std::vector<DriverRegistration> All();
};

// Makes every registered driver for `context`, by name. Fails with the first that fails.
Result<std::vector<DriverPtr>> MakeRegisteredDrivers(const DriverContext& context);

// `D::Create(options)` as a DriverPtr: the body of most registrations' `make`.
template <class D, class Options>
Result<DriverPtr> CreateDriver(Options options) {
  MT_ASSIGN_OR_RETURN(auto driver, D::Create(std::move(options)));
  return DriverPtr(std::move(driver));
}

}  // namespace mentat

// In a driver's .cc, at namespace scope: MENTAT_REGISTER_DRIVER(exec, {.name = "exec", ...}).
// Its library needs `alwayslink = 1`, or the linker drops the object nothing else refers to.
#define MENTAT_REGISTER_DRIVER(ident, ...)                      \
  [[maybe_unused]] static const bool mentat_driver_##ident##_registered = \
      ::mentat::DriverRegistry::Register(::mentat::DriverRegistration __VA_ARGS__)

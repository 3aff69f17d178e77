// A test-only driver, registered from this one file: host processes, made the exec driver's way
// and supervised by a ProcessSupervisor, with nothing of its own. It shows what a new driver
// costs: a spawn, its capabilities and a registration; the conformance suite, whose BUILD globs
// testing/*_driver.cc, runs it without any other file naming it.
#include <memory>

#include "runtimes/exec/exec_driver.h"
#include "runtimes/exec/supervised_driver.h"
#include "runtimes/exec/supervisor.h"
#include "runtimes/registry.h"

namespace mentat {
namespace {

class MinimalDriver : public SupervisedDriver<MinimalDriver> {
 public:
  static Result<DriverPtr> Create() {
    std::unique_ptr<MinimalDriver> d(new MinimalDriver());
    SupervisorOptions options;
    options.cgroup_parent = "mentat-minimal";  // apart from exec's groups and their sweep
    MT_ASSIGN_OR_RETURN(d->supervisor_, ProcessSupervisor::Create(d->Name(), std::move(options)));
    return DriverPtr(std::move(d));
  }

  std::string Name() const override { return "minimal"; }
  Result<TaskHandle> Start(const TaskConfig& config) override {
    return supervisor_->Start(config, [&](const ProcessSupervisor::SpawnIO& io) {
      return SpawnHostProcess(config, io, Name() + ": ");
    });
  }
  Json Capabilities() const override {
    return {{"exec", true}, {"signal", true}, {"recover", true}, {"isolation", "none"},
            {"limits", Json::array({"memory", "cpu", "pids"})}};
  }

  ProcessSupervisor& supervisor() { return *supervisor_; }

 private:
  MinimalDriver() = default;

  ProcessSupervisorPtr supervisor_;
};

MENTAT_REGISTER_DRIVER(minimal, {
  .name = "minimal",
  .root = WorkloadRoot::kHost,
  .make = [](const DriverContext&) { return MinimalDriver::Create(); },
  .probe = [](const DriverContext&) -> Status { return {}; },
});

}  // namespace
}  // namespace mentat

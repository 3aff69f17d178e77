// The VM drivers' spec, firecracker's and qemu's alike: an image or a binary to boot, and
// vcpus among the resources.
#include "apis/drivers/driver_spec.h"

namespace mentat {
namespace {

// The seed's VM services name no image: the service binary is installed on each node under
// /opt/mentat/bin (seed 002's layout).
void Defaults(SpecDraft& d) {
  if (!d.fields.contains("image") && !d.fields.contains("rootfs") && !d.fields.contains("binary")) {
    d.out["image"] = "/opt/mentat/bin/" + d.name;
  }
}

constexpr std::string_view kFields[] = {"image", "binary"};
constexpr std::string_view kResources[] = {"vcpus"};
const DriverSpecRegistration kFirecracker({.name = "firecracker",
                                           .rank = 50,
                                           .fields = kFields,
                                           .resources = kResources,
                                           .defaults = Defaults});
const DriverSpecRegistration kQemu({.name = "qemu",
                                    .rank = 60,
                                    .fields = kFields,
                                    .resources = kResources,
                                    .defaults = Defaults});

}  // namespace
}  // namespace mentat

#include "runtimes/registry.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace mentat {
namespace {

struct Catalog {
  std::mutex mu;
  std::map<std::string, DriverRegistration> by_name;
};

// Built on first use: registrations run from other files' static initializers, in no set order.
Catalog& TheCatalog() {
  static Catalog* catalog = new Catalog();
  return *catalog;
}

}  // namespace

bool DriverRegistry::Register(DriverRegistration registration) {
  Catalog& c = TheCatalog();
  std::lock_guard<std::mutex> lock(c.mu);
  if (registration.name.empty() || !registration.make || c.by_name.count(registration.name)) {
    std::fprintf(stderr, "driver registry: driver \"%s\" registered twice or without a factory\n",
                 registration.name.c_str());
    std::abort();
  }
  std::string name = registration.name;
  c.by_name.emplace(std::move(name), std::move(registration));
  return true;
}

std::vector<DriverRegistration> DriverRegistry::All() {
  Catalog& c = TheCatalog();
  std::lock_guard<std::mutex> lock(c.mu);
  std::vector<DriverRegistration> out;
  for (const auto& [name, r] : c.by_name) out.push_back(r);
  return out;
}

Result<std::vector<DriverPtr>> MakeRegisteredDrivers(const DriverContext& context) {
  std::vector<DriverPtr> drivers;
  for (const auto& r : DriverRegistry::All()) {
    MT_ASSIGN_OR_RETURN(DriverPtr d, r.make(context));
    drivers.push_back(std::move(d));
  }
  return drivers;
}

}  // namespace mentat

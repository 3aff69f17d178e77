#include "controllers/registry.h"

#include <cstdlib>
#include <iostream>

namespace mentat {

ControllerRegistry& ControllerRegistry::Global() {
  // Built on first use: registrations run as static initializers, in no set order.
  static auto* registry = new ControllerRegistry();
  return *registry;
}

bool ControllerRegistry::Register(const std::string& name, ControllerFactory factory) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!factories_.emplace(name, std::move(factory)).second) {
    std::cerr << "controller " << name << " is registered twice\n";
    std::abort();
  }
  return true;
}

std::vector<std::string> ControllerRegistry::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories_) names.push_back(name);
  return names;
}

std::vector<ReconcilerPtr> ControllerRegistry::MakeAll(const ControllerContext& ctx) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ReconcilerPtr> out;
  for (const auto& [name, factory] : factories_) out.push_back(factory(ctx));
  return out;
}

}  // namespace mentat

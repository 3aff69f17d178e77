#include "apis/drivers/driver_spec.h"

#include <algorithm>
#include <cstdlib>

namespace mentat {
namespace {

// Filled at static initialization, before main; read-only afterwards.
std::vector<DriverSpec>& Drivers() {
  static std::vector<DriverSpec> drivers;
  return drivers;
}

std::vector<SpecFieldStep>& Steps() {
  static std::vector<SpecFieldStep> steps;
  return steps;
}

template <typename T>
void InsertByRank(std::vector<T>& into, const T& item) {
  auto at = std::upper_bound(into.begin(), into.end(), item,
                             [](const T& a, const T& b) { return a.rank < b.rank; });
  into.insert(at, item);
}

bool Lists(std::span<const std::string_view> list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

DriverSpecRegistration::DriverSpecRegistration(const DriverSpec& spec) {
  if (FindDriverSpec(spec.name) != nullptr) std::abort();  // registered twice
  InsertByRank(Drivers(), spec);
}

SpecFieldRegistration::SpecFieldRegistration(std::span<const SpecFieldStep> steps) {
  for (const auto& step : steps) {
    for (const auto& known : Steps()) {
      if (known.field == step.field) std::abort();  // registered twice
    }
    InsertByRank(Steps(), step);
  }
}

const std::vector<DriverSpec>& DriverSpecs() { return Drivers(); }

const DriverSpec* FindDriverSpec(std::string_view name) {
  for (const auto& d : Drivers()) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

const std::vector<SpecFieldStep>& SpecFieldSteps() { return Steps(); }

std::vector<std::string> DriverOnlyFields() {
  std::vector<std::string> out;
  for (const auto& step : Steps()) {
    std::string field(step.field);
    if (!DriversTaking(field).empty()) out.push_back(field);
  }
  return out;
}

std::vector<std::string> DriversTaking(const std::string& field, bool resource) {
  std::vector<std::string> out;
  for (const auto& d : Drivers()) {
    if (Lists(resource ? d.resources : d.fields, field)) out.emplace_back(d.name);
  }
  return out;
}

}  // namespace mentat

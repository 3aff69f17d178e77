// The Service spec fields of each driver, registered from one file per driver
// (apis/drivers/*_spec.cc): the fields only some drivers take, how each is normalized, what a
// driver requires and what it fills in. A new driver's fields are one new file here.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "apis/field_checker.h"
#include "apis/kind_registry.h"

namespace mentat {

struct DriverSpec {
  std::string_view name;  // "docker"
  int rank = 0;           // its place in KnownDrivers() and in messages that list drivers
  // Spec fields that only some drivers take and this one does ("image"); a field no driver
  // lists is taken by all.
  std::span<const std::string_view> fields;
  std::span<const std::string_view> resources;  // likewise, among the resource keys ("vcpus")
  DefaultStep defaults = nullptr;    // e.g. a VM's image from the service's name
  ValidateStep validate = nullptr;   // what the driver requires, e.g. docker's image
};

// How one spec field becomes canonical: `value` as written, at input path `path`; the result
// goes to draft.out. Steps run by rank, the order in which their problems are reported:
//   image 10, base 20, rootfs 30, command 40, args 50, env 60, cwd 70, user 80, port 90,
//   ports 100, volumes 110, resources 120, security 130, deploy 140, ingress 150, logs 160,
//   docker 170, checks 180 (after port: a check's port defaults to it), restart 190,
//   manifest 200, binary 210, hull 220, adopt 230.
struct SpecFieldStep {
  std::string_view field;
  int rank = 0;
  void (*normalize)(const Json& value, const std::string& path, SpecDraft& draft,
                    FieldChecker& check) = nullptr;
};

struct DriverSpecRegistration {
  explicit DriverSpecRegistration(const DriverSpec& spec);
};
struct SpecFieldRegistration {
  explicit SpecFieldRegistration(std::span<const SpecFieldStep> steps);
};

// Every driver, by rank.
const std::vector<DriverSpec>& DriverSpecs();
const DriverSpec* FindDriverSpec(std::string_view name);
// Every field step, by rank.
const std::vector<SpecFieldStep>& SpecFieldSteps();

// The fields some drivers do not take, in field-step order; and the drivers that take one
// ("image" -> docker, firecracker, qemu).
std::vector<std::string> DriverOnlyFields();
std::vector<std::string> DriversTaking(const std::string& field, bool resource = false);

}  // namespace mentat

#include "apis/schema.h"

#include "apis/hull_manifest.h"

namespace mentat {
namespace {

Json Str(const std::string& description) {
  return {{"type", "string"}, {"description", description}};
}
Json Int(const std::string& description, int64_t min, int64_t max) {
  return {{"type", "integer"}, {"minimum", min}, {"maximum", max}, {"description", description}};
}
Json Bool(const std::string& description) {
  return {{"type", "boolean"}, {"description", description}};
}
Json Enum(const std::string& description, const std::vector<std::string>& values) {
  return {{"type", "string"}, {"enum", values}, {"description", description}};
}
Json AbsPath(const std::string& description) {
  return {{"type", "string"}, {"pattern", "^/"}, {"description", description}};
}

// ---- the forms a value may take ----

Json MemoryForms() {
  return {{"description", "memory: 256m, 1g, 512Mi; a bare number is megabytes"},
          {"oneOf", Json::array({{{"type", "integer"}, {"minimum", 4}},
                                 {{"type", "string"},
                                  {"pattern", "^[0-9]+(\\.[0-9]+)?\\s*[kKmMgGtT]?[iI]?[bB]?$"}}})}};
}

Json CpuForms() {
  return {{"description", "CPU: 50% of a core, 0.5 or 2 cores, or 500m millicores"},
          {"oneOf",
           Json::array({{{"type", "number"}, {"exclusiveMinimum", 0}},
                        {{"type", "string"}, {"pattern", "^[0-9]+(\\.[0-9]+)?\\s*(%|m)?$"}}})}};
}

Json EnvForms() {
  return {
      {"description",
       "environment: a map, a list of \"KEY=VALUE\", a list of [KEY, VALUE] pairs, "
       "or a list of {name, value}"},
      {"oneOf",
       Json::array({{{"type", "object"},
                     {"additionalProperties",
                      {{"type", Json::array({"string", "number", "boolean", "null"})}}}},
                    {{"type", "array"},
                     {"items",
                      {{"oneOf", Json::array({{{"type", "string"}, {"pattern", "^[^=]+=.*$"}},
                                              {{"type", "array"}, {"minItems", 2}, {"maxItems", 2}},
                                              {{"type", "object"},
                                               {"required", {"name"}},
                                               {"properties",
                                                {{"name", {{"type", "string"}}},
                                                 {"value", {{"type", "string"}}}}},
                                               {"additionalProperties", false}}})}}}}})}};
}

Json PortForms() {
  return {{"oneOf", Json::array({{{"type", "integer"}, {"minimum", 1}, {"maximum", 65535}},
                                 {{"type", "string"},
                                  {"pattern", "^[0-9]{1,5}(:[0-9]{1,5})?(/(tcp|udp))?$"}},
                                 {{"type", "object"},
                                  {"required", {"container"}},
                                  {"properties",
                                   {{"host", Int("host port", 1, 65535)},
                                    {"container", Int("container port", 1, 65535)},
                                    {"protocol", Enum("protocol", {"tcp", "udp"})}}},
                                  {"additionalProperties", false}}})}};
}

Json VolumeForms() {
  return {{"oneOf", Json::array({{{"type", "string"}, {"pattern", "^/[^:]*:/[^:]*(:(ro|rw))?$"}},
                                 {{"type", "object"},
                                  {"required", {"source", "target"}},
                                  {"properties",
                                   {{"source", AbsPath("host path (absolute, no ..)")},
                                    {"target", AbsPath("path inside the workload")},
                                    {"read_only", Bool("mount read-only")}}},
                                  {"additionalProperties", false}}})}};
}

// ---- the spec's fields, by section (nlohmann's objects keep their keys sorted, so how the
// fields are grouped here does not change the printed schema) ----

// The resource fields, accepted at the spec's level and under `resources` alike.
Json ResourceProperties() {
  return {
      {"memory", MemoryForms()},
      {"memory_mb", Int("memory in megabytes", 4, 1 << 20)},
      {"cpu", CpuForms()},
      {"cpu_percent", Int("CPU as a percentage of one core", 1, 102400)},
      {"cpu_mhz", Int("CPU in MHz", 1, 1000000)},
      {"disk_mb", Int("disk in megabytes", 1, 1 << 24)},
      {"max_pids", Int("maximum processes", 1, 4194304)},
      {"pids", Int("maximum processes", 1, 4194304)},
      {"vcpus", Int("virtual CPUs (firecracker, qemu)", 1, 256)},
  };
}

// What runs, how many, and with what.
Json WorkloadProperties() {
  return {
      {"driver",
       Enum("the runtime driver", {"exec", "sandbox", "hull", "docker", "firecracker", "qemu"})},
      {"count", Int("desired number of allocations", 0, 1000)},
      {"replicas", Int("same as count", 0, 1000)},
      {"scale",
       {{"type", "object"},
        {"description", "autoscaling bounds; min also sets the count when count is absent"},
        {"properties",
         {{"min", Int("fewest allocations", 0, 1000)},
          {"max", Int("most allocations", 0, 1000)},
          {"metric", Enum("what drives scaling", {"cpu", "memory"})},
          {"scale_up_at", Int("scale up above this percent", 1, 100)},
          {"scale_down_at", Int("scale down below this percent", 0, 99)}}},
        {"additionalProperties", false}}},
      {"image", Str("docker image, or the VM image/binary for firecracker and qemu")},
      {"base", Enum("sandbox base", {"node22", "python312", "java21", "static"})},
      {"rootfs", Str("root filesystem: a directory relative to the manifest (packed and "
                     "uploaded by mt apply), sha256:HEX of an uploaded artifact, or an absolute "
                     "path on the node")},
      {"command", Str("the program to run")},
      {"args",
       {{"type", "array"}, {"items", {{"type", Json::array({"string", "number", "boolean"})}}}}},
      {"env", EnvForms()},
      {"cwd", AbsPath("working directory")},
      {"user",
       {{"type", Json::array({"string", "integer"})},
        {"description", "user name or uid, optionally :group"}}},
      {"volumes", {{"type", "array"}, {"items", VolumeForms()}}},
      {"resources",
       {{"type", "object"},
        {"description", "resource requests and limits"},
        {"properties", ResourceProperties()},
        {"additionalProperties", false}}},
  };
}

Json HealthCheck() {
  return {
      {"type", "object"},
      {"required", {"type"}},
      {"properties",
       {{"type", Enum("what the check does", {"tcp", "http", "exec"})},
        {"port", Int("tcp, http: the port (default: the service's port)", 1, 65535)},
        {"path",
         {{"type", "string"},
          {"pattern", "^/"},
          {"description", "http: GET this path; 2xx and 3xx pass"}}},
        {"command",
         {{"type", Json::array({"string", "array"})},
          {"description", "exec: run in the task; exit 0 passes"}}},
        {"interval", {{"type", Json::array({"string", "integer"})}, {"description", "e.g. 10s"}}},
        {"timeout", {{"type", Json::array({"string", "integer"})}, {"description", "e.g. 1s"}}},
        {"success_threshold", Int("passes in a row to become healthy", 1, 100)},
        {"failure_threshold", Int("failures in a row to become unhealthy", 1, 100)}}},
      {"additionalProperties", false}};
}

// How it is reached, secured, watched and rolled out.
Json OperationsProperties() {
  return {
      {"port", Int("the service's TCP port; readiness waits for it", 1, 65535)},
      {"ports",
       {{"type", "array"},
        {"items", PortForms()},
        {"description", "published ports, \"HOST:CONTAINER[/udp]\""}}},
      {"security",
       {{"type", "object"},
        {"properties",
         {{"profile", Str("a SecurityProfile name, e.g. sandbox or docker-hardened")}}},
        {"additionalProperties", false}}},
      {"deploy",
       {{"type", "object"},
        {"properties",
         {{"strategy", Enum("how spec changes roll out", {"rolling", "recreate"})},
          {"max_parallel", Int("allocations replaced at once", 1, 1000)},
          {"min_healthy_time",
           {{"type", Json::array({"string", "integer"})}, {"description", "e.g. 10s"}}},
          {"healthy_deadline",
           {{"type", Json::array({"string", "integer"})}, {"description", "e.g. 5m"}}},
          {"auto_revert", Bool("revert to the last good spec when a rollout fails")}}},
        {"additionalProperties", false}}},
      {"ingress",
       {{"type", "object"},
        {"required", {"host"}},
        {"properties",
         {{"host", Str("public host name")},
          {"aliases", {{"type", "array"}, {"items", {{"type", "string"}}}}},
          {"path", {{"type", "string"}, {"pattern", "^/"}}},
          {"tls", Bool("serve HTTPS")}}},
        {"additionalProperties", false}}},
      {"restart", Enum("restart policy", {"always", "on-failure", "never"})},
      {"logs",
       {{"type", "object"},
        {"description", "log rotation of stdout.log and stderr.log (default: the agent's flags)"},
        {"properties",
         {{"max_file_mb", Int("rotate past this many megabytes", 1, 1 << 20)},
          {"max_files", Int("rotated files kept per stream", 0, 100)}}},
        {"additionalProperties", false}}},
      {"checks",
       {{"type", "array"},
        {"description", "health checks: an allocation is Ready only while all pass"},
        {"items", HealthCheck()}}},
  };
}

// The fields only some drivers take: hull's, docker's, the VMs' binary.
Json DriverProperties() {
  return {
      {"manifest",
       {{"description", "hull: a manifest path on the node, or an inline hull manifest"},
        {"type", Json::array({"string", "object"})}}},
      {"binary", AbsPath("hull binary, or VM binary")},
      {"docker",
       {{"type", "object"},
        {"description",
         "docker: container security settings, checked against the security profile"},
        {"properties",
         {{"privileged",
           Bool("full host privileges (forbidden by docker-hardened and docker-legacy)")},
          {"cap_add",
           {{"type", "array"},
            {"items", {{"type", "string"}}},
            {"description", "capabilities to add"}}},
          {"cap_drop",
           {{"type", "array"},
            {"items", {{"type", "string"}}},
            {"description", "capabilities to drop, or [ALL]"}}},
          {"read_only_rootfs", Bool("mount the container's root filesystem read-only")},
          {"no_new_privileges", Bool("forbid gaining privileges through setuid binaries")},
          {"seccomp", Enum("seccomp profile", {"default", "strict", "unconfined"})},
          {"apparmor", Str("AppArmor profile: default, unconfined or a name")},
          {"network_mode", Enum("container network", {"bridge", "host", "none"})},
          {"pid_mode", Enum("PID namespace", {"", "host"})},
          {"ipc_mode", Enum("IPC namespace", {"", "private", "shareable", "host", "none"})}}},
        {"additionalProperties", false}}},
      {"hull",
       {{"type", "object"},
        {"description", "hull: settings of the generated manifest"},
        {"properties",
         {{"profile", Enum("seccomp profile", HullProfiles())},
          {"network", Enum("network mode", HullNetworkModes())},
          {"hostname", Str("the container's host name (default: its name)")}}},
        {"additionalProperties", false}}},
      {"adopt",
       {{"type", "object"},
        {"required", {"container"}},
        {"properties", {{"container", Str("the running Docker container to adopt")}}},
        {"additionalProperties", false}}},
  };
}

// Fields allowed both at the top level and under `config`.
Json SpecProperties() {
  Json properties = WorkloadProperties();
  properties.update(ResourceProperties());
  properties.update(OperationsProperties());
  properties.update(DriverProperties());
  return properties;
}

}  // namespace

Json ServiceManifestSchema() {
  Json spec_props = SpecProperties();
  Json flat_props = spec_props;
  flat_props["apiVersion"] = {{"const", std::string(kApiVersion)}};
  flat_props["kind"] = {{"const", "Service"}};
  flat_props["name"] = {{"type", "string"},
                        {"pattern", "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
                        {"description", "DNS label, 1-63 characters"}};
  flat_props["namespace"] = flat_props["name"];
  flat_props["labels"] = {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}};
  flat_props["annotations"] = flat_props["labels"];
  flat_props["config"] = {{"type", "object"},
                          {"properties", spec_props},
                          {"additionalProperties", false},
                          {"description", "the same fields as the top level (seed 000's form)"}};
  Json canonical = {
      {"type", "object"},
      {"required", {"metadata", "spec"}},
      {"properties",
       {{"apiVersion", {{"const", std::string(kApiVersion)}}},
        {"kind", {{"const", "Service"}}},
        {"metadata", {{"type", "object"}, {"required", {"name"}}}},
        {"spec", {{"type", "object"}, {"properties", spec_props}, {"additionalProperties", false}}},
        {"status", {{"type", "object"}}}}},
      {"additionalProperties", false}};
  Json flat = {{"type", "object"}, {"properties", flat_props}, {"additionalProperties", false}};
  return {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
          {"$id", "https://mentat.io/schemas/v1/service.json"},
          {"title", "Mentat Service manifest"},
          {"description",
           "A Mentat Service, in the seed form (fields at the top level or under config) "
           "or the canonical form (metadata + spec). Quantities, env and ports accept "
           "several forms; the server normalizes them."},
          {"oneOf", Json::array({flat, canonical})}};
}

}  // namespace mentat

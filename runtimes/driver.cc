#include "runtimes/driver.h"

namespace mentat {

Json TaskHandle::ToJson() const {
  return {{"version", version}, {"driver", driver}, {"id", id}, {"state", state}};
}

Result<TaskHandle> TaskHandle::FromJson(const Json& j) {
  if (!j.is_object() || !j.contains("driver") || !j.contains("id") || !j["driver"].is_string() ||
      !j["id"].is_string()) {
    return InvalidArgument("task handle is missing driver or id");
  }
  TaskHandle h;
  h.version = j.value("version", 1);
  h.driver = j["driver"].get<std::string>();
  h.id = j["id"].get<std::string>();
  h.state = j.value("state", Json::object());
  return h;
}

}  // namespace mentat

#include "runtimes/agent/handle_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "runtimes/agent/orphans.h"

namespace mentat {
namespace fs = std::filesystem;

std::string HandleStore::TaskDir(const std::string& key) const {
  return tasks_dir_ + "/" + TaskIdForKey(key);
}

Status HandleStore::WriteHandle(const std::string& key, const LocalTask& t) const {
  std::string dir = TaskDir(key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  Json j = {{"key", key},          {"handle", t.handle.ToJson()}, {"allocUid", t.alloc_uid},
            {"specHash", t.spec_hash}, {"port", t.port},          {"restart", t.restart_policy},
            {"restarts", t.restarts}, {"checks", t.checks_spec},
            {"artifact", t.artifact.value_or("")},
            {"logs", {{"max_file_mb", t.logs.max_file_bytes >> 20}, {"max_files", t.logs.max_files}}}};
  // Write-then-rename so a crash never leaves a torn handle.
  std::string tmp = dir + "/handle.json.tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump();
    f.flush();
    if (!f) return Internal("writing " + tmp);
  }
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(tmp, dir + "/handle.json", ec);
  if (ec) return Internal("renaming handle: " + ec.message());
  return {};
}

std::vector<HandleStore::Persisted> HandleStore::ReadHandles(const LogLimits& default_logs) const {
  std::vector<Persisted> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tasks_dir_, ec)) {
    std::ifstream f(entry.path() / "handle.json");
    if (!f) continue;
    Json j = Json::parse(f, nullptr, false);
    if (j.is_discarded()) {
      spdlog::warn("agent: ignoring unreadable handle {}", (entry.path() / "handle.json").string());
      continue;
    }
    auto handle = TaskHandle::FromJson(j.value("handle", Json()));
    if (!handle) continue;
    std::string key = j.value("key", "");
    if (key.empty()) continue;
    LocalTask t;
    t.driver = handle->driver;
    t.handle = *handle;
    t.alloc_uid = j.value("allocUid", "");
    t.spec_hash = j.value("specHash", "");
    if (j.contains("artifact") && j["artifact"].is_string()) t.artifact = j["artifact"];
    t.port = j.value("port", 0);
    t.checks_spec = j.value("checks", Json{{"port", t.port}});
    t.logs = LogLimitsFor(j.value("logs", Json()), default_logs);
    t.restart_policy = j.value("restart", "always");
    t.restarts = j.value("restarts", 0);
    t.pid = handle->state.value("pid", 0);
    t.started_at = handle->state.value("startedAt", "");
    t.started_mono = std::chrono::steady_clock::now();
    out.push_back({std::move(key), std::move(t)});
  }
  return out;
}

Status HandleStore::WriteMarker(const std::string& key, const std::string& task_id) const {
  std::string dir = TaskDir(key);
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream f(dir + "/" + kStartingMarker, std::ios::trunc);
  f << task_id << "\n";
  f.flush();
  if (!f) return Internal("writing " + dir + "/" + kStartingMarker);
  return {};
}

void HandleStore::ClearMarker(const std::string& key) const {
  fs::remove(TaskDir(key) + "/" + kStartingMarker);
}

void HandleStore::SweepMarkers(
    const std::function<void(const std::string& task_id)>& kill_orphans) const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tasks_dir_, ec)) {
    std::ifstream marker(entry.path() / kStartingMarker);
    std::string task_id;
    if (!marker || !std::getline(marker, task_id) || task_id.empty()) continue;
    // Removed only after the kill: a crash in between sweeps again.
    kill_orphans(task_id);
    fs::remove(entry.path() / kStartingMarker, ec);
  }
}

void HandleStore::Remove(const std::string& key) const {
  std::error_code ec;
  fs::remove_all(TaskDir(key), ec);
}

}  // namespace mentat

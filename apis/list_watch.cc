#include "apis/list_watch.h"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace mentat {

ListWatcher::ListWatcher(ApiClient& client, std::string plural, RequestOptions options)
    : client_(client), plural_(std::move(plural)), options_(std::move(options)) {}

Result<std::vector<Json>> ListWatcher::List() {
  MT_ASSIGN_OR_RETURN(Json list, client_.List(plural_, options_));
  std::vector<Json> items;
  objects_.clear();
  for (const auto& item : list.value("items", Json::array())) {
    objects_[Key(item)] = item;
    items.push_back(item);
  }
  try {
    revision_ = std::stoll(list.value("resourceVersion", std::string("0")));
  } catch (...) {
    revision_ = 0;
  }
  return items;
}

void ListWatcher::Pause(std::chrono::milliseconds& backoff) {
  auto wait = backoff;
  if (deadline_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now());
    wait = std::max(std::chrono::milliseconds(0), std::min(wait, left));
  }
  // Pacing between reconnects to a server that is down, not a wait for state.
  std::this_thread::sleep_for(wait);
  backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
}

Result<bool> ListWatcher::Relist(const OnEvent& on_event) {
  auto before = std::move(objects_);
  MT_ASSIGN_OR_RETURN(auto items, List());
  for (const auto& item : items) {
    auto it = before.find(Key(item));
    std::string type = it == before.end() ? "ADDED" : "MODIFIED";
    bool changed = it == before.end() || ResourceVersionOf(it->second) != ResourceVersionOf(item);
    if (it != before.end()) before.erase(it);
    if (changed && !on_event(type, item)) return false;
  }
  for (const auto& [key, gone] : before) {
    if (!on_event("DELETED", gone)) return false;
  }
  return true;
}

Result<bool> ListWatcher::Run(const OnEvent& on_event) {
  // The deadline must also end a watch that is quiet: a timer cancels the stream.
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  std::thread timer;
  if (deadline_) {
    timer = std::thread([&] {
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_until(lock, *deadline_, [&] { return finished; })) client_.CancelWatches();
    });
  }
  // The cancel of an earlier Run's deadline would end this one's watches at once.
  struct Resume {
    ApiClient& client;
    bool deadline;
    ~Resume() {
      if (deadline) client.ResumeWatches();
    }
  } resume{client_, deadline_.has_value()};
  struct StopTimer {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& finished;
    std::thread& timer;
    ~StopTimer() {
      {
        std::lock_guard<std::mutex> lock(mu);
        finished = true;
      }
      cv.notify_all();
      if (timer.joinable()) timer.join();
    }
  } stop_timer{mu, cv, finished, timer};

  auto backoff = std::chrono::milliseconds(200);
  bool interrupted = false;  // a notice was given for the current outage
  for (bool first = true; true; first = false) {
    if (Expired()) return false;
    if (!first && before_resume_) {
      if (auto ready = before_resume_(); !ready) {
        if (notice_) notice_("not resuming the watch yet: " + ready.error().message());
        Pause(backoff);
        continue;
      }
    }
    bool stopped = false, gone = false;
    auto st = client_.Watch(plural_, revision_, options_, [&](const Json& ev) {
      std::string type = ev.value("type", "");
      const Json& obj = ev.contains("object") ? ev["object"] : Json::object();
      backoff = std::chrono::milliseconds(200);
      interrupted = false;
      if (type == "ERROR") {
        // The server ends the stream after this: 410 when this client fell too far behind
        // (list again), 503 when it shuts down (resume from revision_).
        if (obj.value("code", 0) == 410) {
          gone = true;
          return false;
        }
        return true;
      }
      int64_t rv = ResourceVersionOf(obj);
      if (rv > revision_) revision_ = rv;
      if (type == "BOOKMARK") return true;
      if (type == "DELETED") {
        objects_.erase(Key(obj));
      } else {
        objects_[Key(obj)] = obj;
      }
      if (!on_event(type, obj)) {
        stopped = true;
        return false;
      }
      return true;
    }, stop_);
    if (stopped) return true;
    if (Expired()) return false;
    if (!gone && !st && st.error().code() == Code::kGone) gone = true;
    if (gone) {
      if (notice_)
        notice_("watch history from revision " + std::to_string(revision_) +
                " is gone; listing again");
      while (true) {
        auto more = Relist(on_event);
        if (more) {
          if (!*more) return true;
          break;
        }
        if (more.error().code() != Code::kUnavailable) return std::unexpected(more.error());
        if (Expired()) return false;
        Pause(backoff);
      }
      continue;
    }
    if (st) continue;  // the stream ended quietly (or the deadline's cancel): go round again
    if (st.error().code() != Code::kUnavailable) return std::unexpected(st.error());
    if (notice_ && !interrupted) {
      notice_("watch interrupted (" + st.error().message() + "); resuming from revision " +
              std::to_string(revision_));
    }
    interrupted = true;
    Pause(backoff);
  }
}

}  // namespace mentat

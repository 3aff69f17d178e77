// For the cluster tests: three mentat-server processes on 127.0.0.1 as one replicated control
// plane (--name, --peer-listen, --initial-cluster), each with its API and peer port, started
// and stopped by the test, with helpers to read /v1/cluster, agree on a leader, write and read.
#pragma once

#include <signal.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "e2e/harness.h"

namespace mentat::e2e {

using namespace std::chrono_literals;
using Json = nlohmann::json;

struct Member {
  std::string name;
  int api = 0;
  int peer = 0;
  std::unique_ptr<Process> process;
  std::string PeerAddress() const { return "127.0.0.1:" + std::to_string(peer); }
};

// `mt --server` member `via` with `args`.
inline CommandResult Mt(const Member& via, std::vector<std::string> args) {
  args.insert(args.begin(), {Runfile("cmd/mt/mt"), "--server", "http://127.0.0.1:" + std::to_string(via.api)});
  return RunCommand(args);
}

// The member `name` in a cluster status, or null.
inline Json MemberIn(const Json& status, const std::string& name) {
  if (!status.is_object() || !status.contains("members")) return Json();
  for (const auto& m : status["members"]) {
    if (m.value("name", "") == name) return m;
  }
  return Json();
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("cluster");
    for (const char* name : {"n1", "n2", "n3"}) {
      members_.push_back({name, FreePort(), FreePort(), nullptr});
      initial_ += std::string(initial_.empty() ? "" : ",") + name + "=127.0.0.1:" +
                  std::to_string(members_.back().peer);
    }
  }
  std::vector<std::string> Argv(const Member& m) {
    std::vector<std::string> extra = {"--name", m.name, "--peer-listen",
                                      "127.0.0.1:" + std::to_string(m.peer), "--initial-cluster", initial_};
    extra.insert(extra.end(), extra_.begin(), extra_.end());
    return ServerArgv(m.api, dir_ + "/" + m.name, extra);
  }
  void Start(Member& m) {
    m.process = std::make_unique<Process>(Argv(m), dir_ + "/" + m.name + ".log");
    ASSERT_TRUE(WaitFor([&] { return HttpGet(m.api, "/healthz").first == 200; }, 15s))
        << m.name << " did not serve /healthz:\n" << m.process->Log();
  }
  // Starts member `m` joining the cluster of `members` (it among them), or making a new one,
  // with the fixture's data directory and `extra_` flags.
  void StartIn(Member& m, const std::vector<const Member*>& members, bool existing) {
    std::string initial;
    for (const Member* o : members) initial += (initial.empty() ? "" : ",") + o->name + "=" + o->PeerAddress();
    std::vector<std::string> extra = {"--name", m.name, "--peer-listen", m.PeerAddress(), "--initial-cluster",
                                      initial};
    if (existing) extra.insert(extra.end(), {"--initial-cluster-state", "existing"});
    extra.insert(extra.end(), extra_.begin(), extra_.end());
    m.process = std::make_unique<Process>(ServerArgv(m.api, dir_ + "/" + m.name, extra), dir_ + "/" + m.name + ".log");
    ASSERT_TRUE(WaitFor([&] { return HttpGet(m.api, "/healthz").first == 200; }, 15s)) << m.process->Log();
  }
  // Whether `name` is a voter in what member `via` reports, within 30 s.
  bool BecomesVoter(const Member& via, const std::string& name) {
    return WaitFor([&] { return MemberIn(Status(via), name).value("voter", false); }, 30s);
  }
  Json Status(const Member& m) {
    auto [code, body] = HttpGet(m.api, "/v1/cluster");
    return code == 200 ? Json::parse(body, nullptr, false) : Json();
  }
  // The leader every running member names, once they agree on one that is running.
  std::string AgreedLeader(std::chrono::milliseconds deadline = 30s) {
    std::string leader;
    WaitFor([&] {
      std::set<std::string> named, running;
      for (auto& m : members_) {
        if (!m.process || !m.process->Running()) continue;
        running.insert(m.name);
        Json s = Status(m);
        named.insert(s.is_object() ? s.value("leader", "") : "");
      }
      leader = named.size() == 1 && running.count(*named.begin()) ? *named.begin() : "";
      return !leader.empty();
    }, deadline);
    return leader;
  }
  // The leader that the running members among `names` agree on.
  std::string AgreedLeaderOf(const std::set<std::string>& names, std::chrono::milliseconds deadline = 30s) {
    std::string leader;
    WaitFor([&] {
      std::set<std::string> named;
      for (auto& m : members_) {
        if (!names.count(m.name)) continue;
        Json s = Status(m);
        named.insert(s.is_object() ? s.value("leader", "") : "");
      }
      leader = named.size() == 1 && names.count(*named.begin()) ? *named.begin() : "";
      return !leader.empty();
    }, deadline);
    return leader;
  }
  // kill -9, reaped: the member is down until Start(m) brings it back from its disk.
  void Kill(Member& m) {
    m.process->Signal(SIGKILL);
    ASSERT_TRUE(m.process->Wait(10s).has_value()) << m.name << " outlived kill -9";
    m.process.reset();
  }
  // Every member's name but `name`.
  std::set<std::string> Others(const std::string& name) const {
    std::set<std::string> rest;
    for (const auto& m : members_) {
      if (m.name != name) rest.insert(m.name);
    }
    return rest;
  }
  Member& Named(const std::string& name) {
    for (auto& m : members_) {
      if (m.name == name) return m;
    }
    throw std::runtime_error("no member " + name);
  }
  // PUT a Service through member m: the status code (0 when unreachable).
  int Put(const Member& m, const std::string& name, int count) { return PutWithin(m, name, count, 10s); }
  // The status of a put that gives up (0) after `within`.
  int PutWithin(const Member& m, const std::string& name, int count, std::chrono::milliseconds within) {
    httplib::Client cli("127.0.0.1", m.api);
    cli.set_connection_timeout(1, 0);
    cli.set_read_timeout(within);
    std::string body = "name: " + name + "\ndriver: exec\ncommand: /bin/true\ncount: " +
                       std::to_string(count) + "\n";
    auto res = cli.Put("/v1/services/" + name, body, "application/yaml");
    return res ? res->status : 0;
  }
  int CountOn(const Member& m, const std::string& name) {
    auto [code, body] = HttpGet(m.api, "/v1/services/" + name);
    if (code != 200) return -code;
    return Json::parse(body, nullptr, false)["spec"].value("count", -1);
  }

  std::string dir_;
  std::string initial_;
  std::vector<std::string> extra_;  // more flags for every member
  std::vector<Member> members_;
};

}  // namespace mentat::e2e

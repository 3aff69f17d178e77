// What the store benches share: the ~1 KiB object both stores are given, one write of it over
// mentat's API or etcd's v3 JSON gateway, a wrk write load against either (every request a new,
// fsynced key), and etcd's command line for a member of a cluster of one or more.
#pragma once

#include <httplib.h>
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mentat::bench {

enum class StoreKind { kMentat, kEtcd };

// A SecurityProfile named `name`, padded to ~1 KiB with its envelope.
nlohmann::json ProfileObject(const std::string& name);

// PUT /v1/securityprofiles/<key> (mentat) or POST /v3/kv/put of /registry/profiles/<key> (etcd):
// whether the store acknowledged it. A refusal is printed to stderr unless `quiet`.
bool PutProfile(StoreKind kind, httplib::Client& client, const std::string& key,
                bool quiet = false);

struct WriteResult {
  double per_sec = 0, p50_ms = 0, p99_ms = 0;
  double cpu_ms_per_1000 = 0;  // the servers' CPU time (all of `servers` together) per 1,000 writes
  bool ok = false;
};

// `clients` wrk connections writing new keys (prefixed `prefix`) to 127.0.0.1:port for
// `seconds`, with the CPU the `servers` used meanwhile. wrk's Lua script is written into `dir`.
// wrk is a Debian package written in C, the same light client for both stores.
WriteResult WrkWrites(StoreKind kind, int port, const std::vector<pid_t>& servers, int clients,
                      double seconds, const std::string& prefix, const std::string& dir);

// One etcd member: its name, client and peer ports on 127.0.0.1, and its data directory.
struct EtcdMember {
  std::string name;
  int client = 0;
  int peer = 0;
  std::string data_dir;
};
// /usr/bin/etcd for `self` in a new cluster of `all` (which includes it), with its defaults
// (fsync on commit, 100 ms heartbeats, 1 s election timeout) and errors-only logging. A member
// restarted on its data directory ignores the initial-cluster flags and rejoins.
std::vector<std::string> EtcdArgv(const EtcdMember& self, const std::vector<EtcdMember>& all);

}  // namespace mentat::bench

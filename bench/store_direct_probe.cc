#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>
#include "store/rocksdb_store.h"
using namespace mentat;
int main(int argc, char** argv) {
  int clients = argc > 1 ? atoi(argv[1]) : 64;
  RocksStoreOptions o; o.dir = "/tmp/sd/db" + std::to_string(clients);
  auto s = RocksStore::Open(o);
  std::atomic<long> n{0}; std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  std::string pad(900, 'x');
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) ts.emplace_back([&, c] {
    for (int i = 0; !stop; ++i) {
      Json obj = {{"kind", "SecurityProfile"}, {"metadata", {{"name", "p" + std::to_string(c) + "-" + std::to_string(i)}, {"annotations", {{"pad", pad}}}}}, {"spec", {{"driver", "exec"}}}};
      if ((*s)->Put(obj)) ++n;
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(3)); stop = true;
  for (auto& t : ts) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("%d clients: %.0f writes/s\n", clients, n / secs);
}

// The simulation's only source of randomness: one generator per run, seeded from the run's seed,
// so that a seed replays the same run. std::mt19937_64's sequence is fixed by the standard; the
// helpers below avoid the library's distributions, whose results are implementation-defined.
#pragma once

#include <cstdint>
#include <random>

namespace mentat::raft::sim {

class SimRandom {
 public:
  explicit SimRandom(uint64_t seed) : gen_(seed) {}
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return gen_() % n; }
  // Uniform in [lo, hi].
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
  bool Chance(double p) { return static_cast<double>(gen_() >> 11) * 0x1.0p-53 < p; }

 private:
  std::mt19937_64 gen_;
};

}  // namespace mentat::raft::sim

#include "store/raft/testing/kv_model.h"

namespace mentat::raft::testing {

std::pair<KvState, KvOutput> ApplyKv(const KvState& state, const KvInput& in) {
  KvState next = state;
  KvOutput out;
  switch (in.op) {
    case KvOp::kGet:
      out = {state.exists, state.value, state.version};
      break;
    case KvOp::kPut:
      next = {true, in.value, state.version + 1};
      out = {true, "", next.version};
      break;
    case KvOp::kCas:
      if (state.version == in.expected_version) {
        next = {true, in.value, state.version + 1};
        out = {true, "", next.version};
      } else {
        out = {false, "", state.version};
      }
      break;
    case KvOp::kDelete:
      next = {};
      out = {state.exists, "", 0};
      break;
  }
  return {next, out};
}

namespace {

bool SameAnswer(const KvInput& in, const KvOutput& a, const KvOutput& b) {
  if (a.ok != b.ok || a.version != b.version) return false;
  return in.op != KvOp::kGet || !a.ok || a.value == b.value;
}

}  // namespace

Model<KvState, KvInput, KvOutput> KvModel() {
  Model<KvState, KvInput, KvOutput> m;
  m.step = [](const KvState& s, const KvInput& in,
              const std::optional<KvOutput>& out) -> std::optional<KvState> {
    auto [next, expected] = ApplyKv(s, in);
    if (out && !SameAnswer(in, *out, expected)) return std::nullopt;
    return next;
  };
  m.partition = [](const KvInput& in) { return in.key; };
  m.describe = DescribeKv;
  return m;
}

std::string DescribeKv(const KvInput& in, const std::optional<KvOutput>& out) {
  std::string s;
  switch (in.op) {
    case KvOp::kGet:
      s = "get(" + in.key + ")";
      break;
    case KvOp::kPut:
      s = "put(" + in.key + ", " + in.value + ")";
      break;
    case KvOp::kCas:
      s = "cas(" + in.key + ", v" + std::to_string(in.expected_version) + " -> " + in.value + ")";
      break;
    case KvOp::kDelete:
      s = "delete(" + in.key + ")";
      break;
  }
  if (!out) return s + " -> unknown";
  if (in.op == KvOp::kGet) {
    return s + (out->ok ? " -> " + out->value + " v" + std::to_string(out->version) : " -> absent");
  }
  return s + " -> " + (out->ok ? "ok" : "failed") + " v" + std::to_string(out->version);
}

}  // namespace mentat::raft::testing

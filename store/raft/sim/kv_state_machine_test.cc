// The simulated nodes' state machine: commands round-trip, a duplicated write changes nothing,
// and a snapshot restores the whole state, sessions included.
#include "store/raft/sim/kv_state_machine.h"

#include <gtest/gtest.h>

namespace mentat::raft::sim {
namespace {

using testing::KvOp;

KvCommand Put(int client, uint64_t seq, std::string key, std::string value) {
  return {client, seq, {KvOp::kPut, std::move(key), std::move(value), 0}};
}

TEST(KvStateMachine, ACommandRoundTripsThroughEntryData) {
  KvCommand c{2, 7, {KvOp::kCas, "k", "v", 3}};
  auto back = DecodeCommand(EncodeCommand(c));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->client, 2);
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->input.op, KvOp::kCas);
  EXPECT_EQ(back->input.expected_version, 3u);
  EXPECT_FALSE(DecodeCommand("not a command"));
}

TEST(KvStateMachine, ADuplicatedWriteIsAppliedOnceAndAnsweredAlike) {
  KvStateMachine m;
  auto first = m.Apply(Put(1, 1, "k", "a"));
  auto again = m.Apply(Put(1, 1, "k", "a"));
  EXPECT_EQ(first.version, 1u);
  EXPECT_EQ(again.version, 1u);
  EXPECT_EQ(m.Read("k").version, 1u);
  KvStateMachine naive(/*deduplicate=*/false);
  naive.Apply(Put(1, 1, "k", "a"));
  naive.Apply(Put(1, 1, "k", "a"));
  EXPECT_EQ(naive.Read("k").version, 2u);
}

TEST(KvStateMachine, ASnapshotRestoresKeysAndSessions) {
  KvStateMachine m;
  m.Apply(Put(1, 1, "a", "x"));
  m.Apply(Put(2, 4, "b", "y"));
  auto restored = KvStateMachine::Restore(m.Serialize(), true);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->Fingerprint(), m.Fingerprint());
  EXPECT_EQ(restored->Read("b").value, "y");
  EXPECT_EQ(restored->Apply(Put(2, 4, "b", "z")).version, 1u);  // the session came along
  EXPECT_FALSE(KvStateMachine::Restore("garbage", true));
}

}  // namespace
}  // namespace mentat::raft::sim

// Proposals as the replicated log carries them, applied to real RocksDB state machines: two
// nodes applying the same entries end with the same objects and revisions; of two conditional
// writes decided against the same state, the second is refused on every node when applied;
// a replayed index is skipped; garbage is an error.
#include "store/proposal.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "store/object_layer.h"
#include "store/rocksdb_state_machine.h"

namespace mentat {
namespace {

std::unique_ptr<RocksStateMachine> Open(const std::string& suffix) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
                    "/proposal-" + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                    "-" + suffix;
  std::filesystem::remove_all(dir);
  StateMachineOptions o;
  o.dir = dir;
  auto sm = RocksStateMachine::Open(o);
  EXPECT_TRUE(sm) << sm.error().ToString();
  return std::move(*sm);
}

Json Svc(const std::string& name, int count) {
  return {{"kind", "Service"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"driver", "exec"}, {"count", count}}}};
}

// A Put decided against `state`, as the node that took the request decides it.
Proposal DecidePut(StateMachine& state, const Json& obj, const WriteOptions& opts, const std::string& id) {
  RecordingReader reader(state);
  Json current;
  auto change = PreparePut(reader, obj, opts, &current);
  EXPECT_TRUE(change && *change) << (change ? "no change" : change.error().message());
  Proposal p;
  p.id = id;
  p.reads = reader.TakeReads();
  p.changes.push_back(std::move(**change));
  return p;
}

// What a node applies: the entry's bytes, decoded.
Result<StateMachine::Applied> ApplyBytes(StateMachine& sm, int64_t index, const std::string& bytes) {
  auto p = DecodeProposal(bytes);
  EXPECT_TRUE(p) << p.error().message();
  return ApplyProposal(sm, index, *p);
}

TEST(Proposal, EncodesAndDecodesEveryField) {
  Proposal p;
  p.id = "n1-7";
  p.reads.push_back({{"Service", "default", "web"}, 12});
  p.reads.push_back({{"Node", "", "a"}, 0});
  p.changes.push_back({{"Service", "default", "web"}, EventType::kModified, Svc("web", 2), ""});
  p.changes.push_back({{"Service", "default", "old"}, EventType::kDeleted, Svc("old", 1), ""});
  auto back = DecodeProposal(EncodeProposal(p));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->id, "n1-7");
  ASSERT_EQ(back->reads.size(), 2u);
  EXPECT_EQ(back->reads[0].key, (ObjectKey{"Service", "default", "web"}));
  EXPECT_EQ(back->reads[0].resource_version, 12);
  EXPECT_EQ(back->reads[1].resource_version, 0);
  ASSERT_EQ(back->changes.size(), 2u);
  EXPECT_EQ(back->changes[1].type, EventType::kDeleted);
  EXPECT_EQ(back->changes[0].object, Svc("web", 2));
  // The bytes are the document's canonical dump, as every earlier server wrote them.
  Json doc = {{"id", "n1-7"},
              {"reads", {{{"Service", "default", "web"}, 12}, {{"Node", "", "a"}, 0}}},
              {"changes",
               {{{"key", {"Service", "default", "web"}}, {"type", static_cast<int>(EventType::kModified)}, {"object", Svc("web", 2)}},
                {{"key", {"Service", "default", "old"}}, {"type", static_cast<int>(EventType::kDeleted)}, {"object", Svc("old", 1)}}}}};
  EXPECT_EQ(EncodeProposal(p), doc.dump());
}

TEST(Proposal, TwoNodesApplyingTheSameEntriesHoldTheSameObjectsAtTheSameRevisions) {
  auto a = Open("a");
  auto b = Open("b");
  std::vector<std::string> log;
  log.push_back(EncodeProposal(DecidePut(*a, Svc("web", 1), {}, "a-1")));
  ASSERT_TRUE(ApplyBytes(*a, 1, log[0]));
  log.push_back(EncodeProposal(DecidePut(*a, Svc("web", 3), {}, "a-2")));
  ASSERT_TRUE(ApplyBytes(*a, 2, log[1]));
  for (size_t i = 0; i < log.size(); ++i) ASSERT_TRUE(ApplyBytes(*b, static_cast<int64_t>(i + 1), log[i]));
  auto in_a = a->Find({"Service", "default", "web"});
  auto in_b = b->Find({"Service", "default", "web"});
  ASSERT_TRUE(in_a && *in_a && in_b && *in_b);
  EXPECT_EQ(**in_a, **in_b);  // uid, timestamps, generation and resourceVersion alike
  EXPECT_EQ((**in_a)["metadata"]["generation"], 2);
  EXPECT_EQ(a->CurrentRevision(), b->CurrentRevision());
  EXPECT_EQ(a->AppliedIndex(), 2);
  EXPECT_EQ(b->AppliedIndex(), 2);
}

TEST(Proposal, OfTwoConditionalWritesDecidedTogetherOnlyTheFirstAppliesOnEveryNode) {
  auto a = Open("a");
  auto b = Open("b");
  std::string create = EncodeProposal(DecidePut(*a, Svc("web", 1), {}, "a-1"));
  ASSERT_TRUE(ApplyBytes(*a, 1, create));
  ASSERT_TRUE(ApplyBytes(*b, 1, create));
  int64_t rv = a->CurrentRevision();
  WriteOptions cond;
  cond.expected_revision = rv;
  // Both decided against revision rv, on different nodes, before either applied.
  std::string first = EncodeProposal(DecidePut(*a, Svc("web", 5), cond, "a-2"));
  std::string second = EncodeProposal(DecidePut(*b, Svc("web", 9), cond, "b-1"));
  for (auto* sm : {a.get(), b.get()}) {
    ASSERT_TRUE(ApplyBytes(*sm, 2, first));
    auto refused = ApplyBytes(*sm, 3, second);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), Code::kConflict) << refused.error().message();
    EXPECT_NE(refused.error().message().find("Service/default/web changed"), std::string::npos)
        << refused.error().message();
    EXPECT_EQ(sm->AppliedIndex(), 3);  // the refused entry is applied as nothing
    auto now = sm->Find({"Service", "default", "web"});
    EXPECT_EQ((**now)["spec"]["count"], 5);
  }
  EXPECT_EQ(a->CurrentRevision(), b->CurrentRevision());
}

TEST(Proposal, TwoCreatesOfOneNameDecidedTogetherCreateItOnce) {
  auto a = Open("a");
  WriteOptions create_only;
  create_only.create_only = true;
  std::string first = EncodeProposal(DecidePut(*a, Svc("web", 1), create_only, "a-1"));
  std::string second = EncodeProposal(DecidePut(*a, Svc("web", 2), create_only, "a-2"));
  ASSERT_TRUE(ApplyBytes(*a, 1, first));
  auto refused = ApplyBytes(*a, 2, second);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kConflict);
  EXPECT_NE(refused.error().message().find("absent when decided"), std::string::npos)
      << refused.error().message();
}

TEST(Proposal, AReplayedIndexIsSkipped) {
  auto a = Open("a");
  std::string create = EncodeProposal(DecidePut(*a, Svc("web", 1), {}, "a-1"));
  ASSERT_TRUE(ApplyBytes(*a, 1, create));
  int64_t rev = a->CurrentRevision();
  auto again = ApplyBytes(*a, 1, create);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->applied);
  EXPECT_EQ(a->CurrentRevision(), rev);
}

TEST(Proposal, BytesThatAreNotAProposalAreInvalid) {
  for (const char* bad : {"", "{", "[]", R"({"id":1,"reads":[],"changes":[]})",
                          R"({"id":"x","reads":[[["Service","default"],1]],"changes":[]})",
                          R"({"id":"x","reads":[],"changes":[{"key":["S","d","n"],"type":3,"object":{}}]})"}) {
    auto p = DecodeProposal(bad);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().code(), Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace mentat

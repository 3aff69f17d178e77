// The work queue's contract: FIFO, deduplicated, never one key to two workers, backoff.
#include "controllers/workqueue.h"

#include <gtest/gtest.h>

#include <thread>

namespace mentat {
namespace {

using namespace std::chrono_literals;

TEST(WorkQueue, FifoAndDeduplicated) {
  WorkQueue q;
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(*q.Get(), "a");
  EXPECT_EQ(*q.Get(), "b");
}

TEST(WorkQueue, AKeyBeingProcessedIsRequeuedOnlyWhenDone) {
  WorkQueue q;
  q.Add("a");
  auto k = q.Get();
  q.Add("a");  // changed while being processed
  q.Add("a");
  EXPECT_EQ(q.Len(), 0u) << "a second worker must not get the same key";
  q.Done(*k);
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(*q.Get(), "a");
}

TEST(WorkQueue, RateLimitedRequeuesBackOffExponentially) {
  WorkQueue q;
  EXPECT_EQ(q.Requeues("a"), 0);
  q.AddRateLimited("a");
  q.AddRateLimited("a");
  q.AddRateLimited("a");
  EXPECT_EQ(q.Requeues("a"), 3);
  q.Forget("a");
  EXPECT_EQ(q.Requeues("a"), 0);
}

TEST(WorkQueue, DelayedKeysComeOutWhenDue) {
  WorkQueue q;
  auto start = std::chrono::steady_clock::now();
  q.AddAfter("late", 30ms);
  q.AddAfter("early", 5ms);
  EXPECT_EQ(*q.Get(), "early");
  EXPECT_EQ(*q.Get(), "late");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST(WorkQueue, ADelayedKeyWaitsOnceForItsEarliestDeadline) {
  WorkQueue q;
  auto start = std::chrono::steady_clock::now();
  // Three reconciles each ask for the same key later, then one asks sooner.
  q.AddAfter("svc", 200ms);
  q.AddAfter("svc", 200ms);
  q.AddAfter("svc", 400ms);
  q.AddAfter("svc", 5ms);
  EXPECT_EQ(*q.Get(), "svc");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 150ms);
  q.Done("svc");
  // Nothing else is waiting for svc: a marker due after the old deadlines comes out next.
  q.AddAfter("marker", 600ms);
  EXPECT_EQ(*q.Get(), "marker");
}

TEST(WorkQueue, RetriesOfManyKeysAreRateLimitedTogether) {
  // 20 retries a second after a burst of 5: 25 failing keys take about a second to all come
  // back, though each key's own backoff is only 5 ms.
  WorkQueue q(20, 5);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 25; ++i) q.AddRateLimited("k" + std::to_string(i));
  for (int i = 0; i < 5; ++i) q.Done(*q.Get());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 200ms) << "the burst goes at once";
  for (int i = 5; i < 25; ++i) q.Done(*q.Get());
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 950ms);
  EXPECT_LT(took, 3s);
}

TEST(WorkQueue, ShutDownReleasesWaitingWorkers) {
  WorkQueue q;
  std::optional<std::string> got = "unset";
  std::thread t([&] { got = q.Get(); });
  q.ShutDown();
  t.join();
  EXPECT_FALSE(got.has_value());
}

}  // namespace
}  // namespace mentat

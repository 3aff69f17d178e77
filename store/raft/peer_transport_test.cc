// PeerTransport over real TCP on 127.0.0.1: messages reach the peer whole and in order, both
// ways; a peer that is down is reported unreachable and gets what is sent once it is back; and
// what a stranger sends (another protocol, another cluster, an unknown member, an oversized or
// cut-off frame) closes its connection without harming the members' own; a member removed is
// told so. A snapshot goes on a connection of its own and its receiver's answer comes back. Raft
// members over it are tested in raft_node_test (its Tcp cases).
#include "store/raft/peer_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace mentat::raft {
namespace {

using namespace std::chrono_literals;

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

// What one member received, and which peers it heard were unreachable.
struct Inbox {
  std::mutex mu;
  std::vector<std::string> messages;
  std::set<uint64_t> unreachable;
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return messages.size();
  }
  bool HeardUnreachable(uint64_t peer) {
    std::lock_guard<std::mutex> lock(mu);
    return unreachable.count(peer) > 0;
  }
};

class PeerTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<PeerTransport> Member(uint64_t id, Inbox* inbox, int port = 0,
                                        const std::string& cluster = "mentat",
                                        std::shared_ptr<PeerTls> tls = nullptr) {
    PeerTransportOptions o;
    o.tls = std::move(tls);
    o.self = id;
    o.cluster = cluster;
    o.listen = "127.0.0.1:" + std::to_string(port);
    o.max_message = 1 << 20;
    o.hello_timeout = 2s;
    auto t = PeerTransport::Start(o);
    EXPECT_TRUE(t) << t.error().message();
    if (!t) return nullptr;
    (*t)->SetHandlers(
        [inbox](std::string m) {
          std::lock_guard<std::mutex> lock(inbox->mu);
          inbox->messages.push_back(std::move(m));
        },
        [inbox](uint64_t peer) {
          std::lock_guard<std::mutex> lock(inbox->mu);
          inbox->unreachable.insert(peer);
        });
    return std::move(*t);
  }
  // Members 1 and 2, each knowing the other.
  void StartPair() {
    a_ = Member(1, &in1_);
    b_ = Member(2, &in2_);
    ASSERT_TRUE(a_ && b_);
    a_->AddPeer(2, Addr(b_));
    b_->AddPeer(1, Addr(a_));
    // Each dials at once; one whose hello came before the other knew it is refused, and what it
    // queued meanwhile lost: the tests begin once both are connected.
    ASSERT_TRUE(WaitFor([&] { return a_->Stats(2).connected && b_->Stats(1).connected; }, 10s));
  }
  static std::string Addr(const std::unique_ptr<PeerTransport>& t) {
    return "127.0.0.1:" + std::to_string(t->port());
  }
  static RaftMessage To(uint64_t peer, std::string bytes) {
    RaftMessage m;
    m.to = peer;
    m.bytes = std::move(bytes);
    return m;
  }
  // A raw connection to t's peer port, for speaking the protocol by hand.
  static int Connect(const std::unique_ptr<PeerTransport>& t) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(t->port()));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    return fd;
  }
  static std::string Frame(const std::string& m) {
    uint32_t n = htonl(static_cast<uint32_t>(m.size()));
    return std::string(reinterpret_cast<const char*>(&n), 4) + m;
  }
  // True when the server closed fd (a read sees EOF or a reset) within 3 s.
  static bool ClosedByPeer(int fd) {
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c;
    ssize_t r = ::recv(fd, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
  }

  Inbox in1_, in2_, in2b_;  // before the transports, which deliver into them until destroyed
  std::unique_ptr<PeerTransport> a_, b_;
};

TEST_F(PeerTransportTest, MessagesArriveWholeAndInOrderBothWays) {
  StartPair();
  auto &a = a_, &b = b_;
  auto &in1 = in1_, &in2 = in2_;
  for (int i = 0; i < 2000; ++i) a->Send(To(2, "m" + std::to_string(i)));
  std::string big(300 << 10, 'x');  // one message larger than a socket buffer
  b->Send(To(1, big));
  ASSERT_TRUE(WaitFor([&] { return in2.Count() == 2000 && in1.Count() == 1; }, 10s))
      << in2.Count() << " and " << in1.Count();
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(in2.messages[i], "m" + std::to_string(i));
  EXPECT_EQ(in1.messages[0], big);
  EXPECT_EQ(a->Stats(2).sent, 2000u);
  EXPECT_EQ(a->Stats(2).dropped, 0u);
  EXPECT_TRUE(a->Stats(2).connected);
}

TEST_F(PeerTransportTest, ASnapshotGoesOnItsOwnConnectionAndItsAnswerComesBack) {
  StartPair();
  std::vector<std::string> taken;
  bool refuse = false;
  b_->SetHandlers([&](std::string m) {
    std::lock_guard<std::mutex> lock(in2_.mu);
    in2_.messages.push_back(std::move(m));
  }, nullptr, [&](uint64_t sender, const FrameReader& next) -> Status {
    EXPECT_EQ(sender, 1u);
    for (;;) {
      auto frame = next();
      if (!frame) return std::unexpected(frame.error());
      if (!*frame) break;
      taken.push_back(std::move(**frame));
    }
    if (refuse) return InvalidArgument("not this one");
    return {};
  });
  std::string big(700 << 10, 's');  // larger than a socket buffer: the writer waits on the reader
  auto sent = a_->SendSnapshot(2, [&](const FrameWriter& frame) -> Status {
    a_->Send(To(2, "a message meanwhile"));  // the message connection is not held up
    EXPECT_TRUE(WaitFor([&] { return in2_.Count() == 1; }, 5s));
    if (!frame("head") || !frame(big) || !frame("tail")) return Unavailable("lost");
    return {};
  }, {});
  ASSERT_TRUE(sent) << sent.error().message();
  EXPECT_EQ(taken, (std::vector<std::string>{"head", big, "tail"}));
  // A refusal comes back to the sender as an error; so does a member that is not a peer.
  refuse = true;
  auto refused = a_->SendSnapshot(2, [](const FrameWriter& frame) -> Status {
    return frame("x") ? Status{} : Unavailable("lost");
  }, {});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("refused the snapshot"), std::string::npos) << refused.error().message();
  EXPECT_EQ(a_->SendSnapshot(9, [](const FrameWriter&) { return Status{}; }, {}).error().code(),
            Code::kNotFound);
  // A stranger's snapshot hello is turned away like its message hello.
  int fd = Connect(b_);
  std::string hello = PeerHello("mentat", 42, /*snapshot=*/true) + Frame("x");
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  EXPECT_TRUE(ClosedByPeer(fd));
  ::close(fd);
  EXPECT_EQ(taken.size(), 4u);  // "x" from member 1's refused one, none from the stranger
}

// Certificates made with openssl for the TLS tests: CA "a" signs member certificates for
// 127.0.0.1 and one for 10.9.9.9 only; CA "b" is another cluster's.
class PeerTlsTest : public PeerTransportTest {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/peer-tls";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(Ca("a") && Ca("b"));
    ASSERT_TRUE(Cert("a", "m1", "IP:127.0.0.1") && Cert("a", "m2", "IP:127.0.0.1") &&
                Cert("b", "stranger", "IP:127.0.0.1") && Cert("a", "elsewhere", "IP:10.9.9.9"));
  }
  bool Run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }
  bool Ca(const std::string& ca) {
    return Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + dir_ +
               "/" + ca + ".key -out " + dir_ + "/" + ca + ".crt -days 2 -subj /CN=" + ca);
  }
  bool Cert(const std::string& ca, const std::string& name, const std::string& san) {
    const std::string base = dir_ + "/" + name;
    std::ofstream(base + ".cnf") << "subjectAltName=" << san << "\n";
    return Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + base +
               ".key -out " + base + ".csr -subj /CN=" + name) &&
           Run("openssl x509 -req -in " + base + ".csr -CA " + dir_ + "/" + ca + ".crt -CAkey " + dir_ +
               "/" + ca + ".key -CAcreateserial -out " + base + ".crt -days 2 -extfile " + base + ".cnf");
  }
  std::shared_ptr<PeerTls> Tls(const std::string& name, const std::string& ca) {
    auto tls = PeerTls::Load({dir_ + "/" + name + ".crt", dir_ + "/" + name + ".key", dir_ + "/" + ca + ".crt"});
    EXPECT_TRUE(tls) << tls.error().message();
    return tls ? *tls : nullptr;
  }
  void StartTlsPair(const std::string& second, const std::string& second_ca) {
    a_ = Member(1, &in1_, 0, "mentat", Tls("m1", "a"));
    b_ = Member(2, &in2_, 0, "mentat", Tls(second, second_ca));
    ASSERT_TRUE(a_ && b_);
    a_->AddPeer(2, Addr(b_));
    b_->AddPeer(1, Addr(a_));
  }
  std::string dir_;
};

TEST_F(PeerTlsTest, MembersOfOneCaTalkAndSendSnapshotsOverTls) {
  StartTlsPair("m2", "a");
  for (int i = 0; i < 100; ++i) a_->Send(To(2, "m" + std::to_string(i)));
  b_->Send(To(1, std::string(300 << 10, 'x')));
  ASSERT_TRUE(WaitFor([&] { return in2_.Count() == 100 && in1_.Count() == 1; }, 10s));
  EXPECT_EQ(in2_.messages[99], "m99");
  std::vector<std::string> taken;
  b_->SetHandlers(nullptr, nullptr, [&](uint64_t, const FrameReader& next) -> Status {
    for (auto f = next(); f && *f; f = next()) taken.push_back(**f);
    return {};
  });
  auto sent = a_->SendSnapshot(2, [](const FrameWriter& frame) -> Status {
    return frame("head") && frame(std::string(500 << 10, 's')) ? Status{} : Unavailable("lost");
  }, {});
  ASSERT_TRUE(sent) << sent.error().message();
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[1].size(), 500u << 10);
  // Idle, the connection stays up: nothing arrives after the handshake (no session tickets)
  // that would read as the peer closing it.
  const uint64_t dials = a_->Stats(2).dials;
  EXPECT_FALSE(WaitFor([&] { return a_->Stats(2).dials != dials; }, 1500ms));
  EXPECT_TRUE(a_->Stats(2).connected);
}

TEST_F(PeerTlsTest, AnotherCasMemberAWrongHostAndPlainTcpAreTurnedAway) {
  // Another cluster's member: neither side's messages get through (checked for a bounded
  // time: nothing is to happen).
  StartTlsPair("stranger", "b");
  a_->Send(To(2, "to the impostor"));
  b_->Send(To(1, "from the impostor"));
  EXPECT_FALSE(WaitFor([&] { return in1_.Count() + in2_.Count() > 0; }, 1500ms));
  EXPECT_FALSE(a_->Stats(2).connected);
  a_.reset();
  b_.reset();
  // A member whose certificate is for another host: it is not dialed. (What it dials is taken:
  // a dialer is known by the CA's signature alone, as etcd's --peer-client-cert-auth.)
  StartTlsPair("elsewhere", "a");
  a_->Send(To(2, "to the wrong host"));
  EXPECT_FALSE(WaitFor([&] { return in2_.Count() > 0; }, 1500ms));
  EXPECT_FALSE(a_->Stats(2).connected);
  a_.reset();
  b_.reset();
  // A plain TCP hello to a TLS port is closed.
  StartTlsPair("m2", "a");
  int fd = Connect(b_);
  std::string hello = PeerHello("mentat", 1) + Frame("plain");
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  EXPECT_TRUE(ClosedByPeer(fd));
  ::close(fd);
  EXPECT_EQ(in2_.Count(), 0u);
  // Files that are not what they should be are refused, naming the file.
  auto bad = PeerTls::Load({dir_ + "/m1.key", dir_ + "/m1.key", dir_ + "/a.crt"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("m1.key"), std::string::npos) << bad.error().message();
  auto mismatched = PeerTls::Load({dir_ + "/m1.crt", dir_ + "/m2.key", dir_ + "/a.crt"});
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message().find("m2.key"), std::string::npos) << mismatched.error().message();
}

TEST_F(PeerTransportTest, APeerThatIsDownIsReportedAndGetsWhatIsSentOnceItIsBack) {
  StartPair();
  auto &a = a_, &b = b_;
  auto &in1 = in1_, &in2 = in2_;
  auto& in2b = in2b_;
  int port = b->port();
  a->Send(To(2, "hello"));
  ASSERT_TRUE(WaitFor([&] { return in2.Count() == 1; }, 5s));
  b.reset();  // the peer's process is gone
  // Sends fail while it is down: the sender hears the peer is unreachable, and nothing blocks.
  ASSERT_TRUE(WaitFor([&] {
    a->Send(To(2, "lost"));
    return in1.HeardUnreachable(2) && a->Stats(2).dropped > 0;
  }, 10s));
  b = Member(2, &in2b, port);  // back, on the same port
  ASSERT_TRUE(b);
  b->AddPeer(1, Addr(a));
  ASSERT_TRUE(WaitFor([&] {
    a->Send(To(2, "again"));
    std::lock_guard<std::mutex> lock(in2b.mu);
    for (const auto& m : in2b.messages) {
      if (m == "again") return true;
    }
    return false;
  }, 10s));
  EXPECT_GE(a->Stats(2).dials, 2u);
}

// A peer that takes nothing (here a socket that never accepts: the dial waits for the hello's
// answer) cannot make the sender hold more than max_queue_bytes: past it, what is sent is lost at
// once and the peer is reported unreachable.
TEST_F(PeerTransportTest, AQueueFullOfBytesLosesWhatIsSentAndReportsThePeer) {
  int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(::listen(silent, 4), 0);
  socklen_t len = sizeof(sa);
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&sa), &len), 0);

  PeerTransportOptions o;
  o.self = 1;
  o.max_queue_bytes = 1 << 20;
  o.hello_timeout = 10s;
  auto a = PeerTransport::Start(o);
  ASSERT_TRUE(a) << a.error().message();
  (*a)->SetHandlers([](std::string) {}, [this](uint64_t peer) {
    std::lock_guard<std::mutex> lock(in1_.mu);
    in1_.unreachable.insert(peer);
  });
  (*a)->AddPeer(2, "127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) (*a)->Send(To(2, std::string(400 << 10, 'x')));
  // Two fit in 1 MiB; the others are lost now, not when the dial gives up 10 s later.
  EXPECT_TRUE(in1_.HeardUnreachable(2));
  EXPECT_EQ((*a)->Stats(2).dropped, 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  (*a)->Stop();
  ::close(silent);
}

TEST_F(PeerTransportTest, StrangersAreTurnedAwayAndMembersGoOn) {
  StartPair();
  auto &a = a_, &b = b_;
  auto& in2 = in2_;

  // Not this protocol at all.
  int fd = Connect(b);
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, http.data(), http.size(), 0), static_cast<ssize_t>(http.size()));
  EXPECT_TRUE(ClosedByPeer(fd));
  ::close(fd);

  // Another cluster's member, and a member this one does not know.
  for (const std::string& hello : {PeerHello("other", 1), PeerHello("mentat", 9)}) {
    fd = Connect(b);
    std::string bytes = hello + Frame("sneaky");
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    EXPECT_TRUE(ClosedByPeer(fd));
    ::close(fd);
  }

  // A known member's id (its hello is answered), then a frame over the limit: closed before
  // any of it is read.
  fd = Connect(b);
  uint32_t huge = htonl(512u << 20);
  std::string bytes = PeerHello("mentat", 1) + std::string(reinterpret_cast<char*>(&huge), 4);
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  char answer = 1;
  EXPECT_EQ(::recv(fd, &answer, 1, 0), 1);
  EXPECT_EQ(answer, 0);
  EXPECT_TRUE(ClosedByPeer(fd));
  ::close(fd);

  // A hello that never comes: closed after the hello timeout.
  fd = Connect(b);
  EXPECT_TRUE(ClosedByPeer(fd));
  ::close(fd);

  // A frame cut off by the client's leaving: nothing delivered.
  fd = Connect(b);
  bytes = PeerHello("mentat", 1) + Frame("complete").substr(0, 7);
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::close(fd);

  EXPECT_EQ(in2.Count(), 0u) << in2.messages[0];
  a->Send(To(2, "still here"));
  ASSERT_TRUE(WaitFor([&] { return in2.Count() == 1; }, 5s));
  EXPECT_EQ(in2.messages[0], "still here");
}

// A member removed from the cluster is told so, with the index of its removal: its open
// connection is closed at once, and its next dial is answered that it was removed. A stranger
// is still refused without a word.
TEST_F(PeerTransportTest, AMemberRemovedIsToldSoWhenItDialsAgain) {
  StartPair();
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> told;  // by, index
  b_->SetRemovedHandler([&](uint64_t by, uint64_t index) {
    std::lock_guard<std::mutex> lock(mu);
    told.emplace_back(by, index);
  });
  a_->SetRemoved({{2, 42}});
  a_->RemovePeer(2);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return !told.empty();
      },
      5s));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(told[0], std::make_pair(uint64_t{1}, uint64_t{42}));
  }
  EXPECT_FALSE(b_->Stats(1).connected);
  // By hand: the answer is 2 and the index, then the connection closes.
  int fd = Connect(a_);
  std::string hello = PeerHello("mentat", 2);
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(hello.size()));
  unsigned char answer[9] = {};
  ASSERT_EQ(::recv(fd, answer, sizeof(answer), MSG_WAITALL), 9);
  EXPECT_EQ(answer[0], 2);
  EXPECT_EQ(answer[8], 42);
  EXPECT_TRUE(ClosedByPeer(fd));
  ::close(fd);
  fd = Connect(a_);
  hello = PeerHello("mentat", 9);
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(hello.size()));
  EXPECT_TRUE(ClosedByPeer(fd));  // no answer byte first: ClosedByPeer reads EOF
  ::close(fd);
}

TEST_F(PeerTransportTest, BadSettingsAreRefusedWithTheReason) {
  PeerTransportOptions o;
  o.self = 0;
  auto r = PeerTransport::Start(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("id"), std::string::npos) << r.error().message();
  o.self = 1;
  o.listen = "127.0.0.1";
  r = PeerTransport::Start(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("host:port"), std::string::npos) << r.error().message();
  o.listen = "127.0.0.1:99999";
  r = PeerTransport::Start(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("99999"), std::string::npos) << r.error().message();
  Inbox in;
  auto taken = Member(1, &in);
  ASSERT_TRUE(taken);
  o.listen = Addr(taken);
  r = PeerTransport::Start(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kUnavailable);
  EXPECT_NE(r.error().message().find(o.listen), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace mentat::raft

// PeerTransport: Raft messages between the members of a cluster over TCP (the peer port, 4648 by
// default).
//
// Each member dials every other member and only writes on the connection it dialed; it reads
// on the connections others dialed to it. A connection opens with a hello (PeerHello) naming
// the cluster and the sender; a connection from another cluster or from an unknown member is
// closed, and one taken is answered with one byte (0), so that the dialer never writes into a
// connection that was refused. A member removed from the cluster (SetRemoved) is answered 2 and
// the log index of its removal (8 bytes, big-endian) before its connection is closed, and its
// connections in are closed as it is removed: it hears so on its next dial (SetRemovedHandler),
// as etcd's removed member hears ErrMemberRemoved. Then frames follow: a 4-byte big-endian
// length and that many bytes of one message, opaque here (RaftNode::Receive takes them). A
// frame over `max_message` closes the connection.
//
// Sending never blocks on the network. Each peer has a queue and a writer thread that connects
// as soon as the peer is added (with backoff), keeps the connection open, writes whatever is
// queued in one go, and reconnects after an error or when the peer closed the connection
// (checked every `idle_check` while idle): Stats().connected says whether this member reaches
// the peer now, even when Raft has nothing to send it (a follower to another follower). A peer that
// cannot be reached loses the queued messages, one whose queue is full (`max_queue` messages or
// `max_queue_bytes`) loses the message sent, and either is reported unreachable: Raft
// retransmits, and the leader probes a peer reported so instead of streaming to it. A write that
// stalls (a stopped peer) gives up after `write_timeout`, and a connection whose peer stopped
// answering (its machine gone, a partition) is closed within `write_timeout` too, on both
// sides (TCP_USER_TIMEOUT with keepalive).
//
// With `tls`, every connection is TLS with the cluster's CA, both ways (peer_tls.h), before the
// hello.
//
// A snapshot goes on a connection of its own, dialed for it (SendSnapshot), so that it neither
// waits behind the messages nor holds them up: a hello with the snapshot magic, its frames as
// above, a zero-length frame to end, then the receiver answers one byte (0: taken) once its
// snapshot handler returned.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "apis/error.h"
#include "store/raft/peer_tls.h"
#include "store/raft/raft_node.h"

namespace mentat::raft {

struct PeerTransportOptions {
  uint64_t self = 0;
  // Shared by the members: a hello naming another cluster is refused.
  std::string cluster = "mentat";
  // host:port to listen on; port 0 picks a free one (port() says which). "": no listener (a
  // cluster of one without a peer port); peers added are still dialed.
  std::string listen = "127.0.0.1:0";
  size_t max_message = 64 << 20;
  // A peer's queue holds at most this many messages and bytes; past either, a message is lost.
  size_t max_queue = 4096;
  size_t max_queue_bytes = 32 << 20;
  std::chrono::milliseconds dial_timeout{1000};
  std::chrono::milliseconds max_backoff{1000};
  std::chrono::milliseconds write_timeout{5000};
  // A dialed connection must send its hello within this.
  std::chrono::milliseconds hello_timeout{5000};
  // How often an idle connection is checked for the peer having closed it.
  std::chrono::milliseconds idle_check{100};
  // How long a snapshot's receiver may take to answer once the stream ended.
  std::chrono::milliseconds snapshot_answer_timeout{30000};
  // TLS with the cluster's CA on every connection, both ways (peer_tls.h); null: plain TCP.
  std::shared_ptr<PeerTls> tls;
};

// One connection: its socket, and its TLS when the cluster has TLS.
struct PeerConn {
  int fd = -1;
  SSL* ssl = nullptr;
};

// Counters of one peer's outgoing side, for status and tests.
struct PeerLinkStats {
  bool connected = false;
  uint64_t sent = 0;     // messages written to the connection
  uint64_t dropped = 0;  // messages lost to an unreachable or lagging peer
  uint64_t dials = 0;    // connections opened
};

class PeerTransport : public RaftTransport {
 public:
  using DeliverFn = std::function<void(std::string message)>;
  using UnreachableFn = std::function<void(uint64_t peer)>;
  // Takes a snapshot stream from `sender`, reading its frames with `next`.
  using SnapshotFn = std::function<Status(uint64_t sender, const FrameReader& next)>;

  // Listens on opts.listen. Messages that arrive before SetHandlers are dropped.
  static Result<std::unique_ptr<PeerTransport>> Start(const PeerTransportOptions& opts);
  ~PeerTransport() override;  // Stop()s

  // Where received messages go, and who hears of an unreachable peer. Any thread; before
  // traffic is expected.
  void SetHandlers(DeliverFn deliver, UnreachableFn unreachable, SnapshotFn snapshot = nullptr);
  // Who hears that a peer's process is gone: its machine answered that nothing listens on its
  // peer port (connection refused). Heard on every refused dial (they back off up to
  // max_backoff); a peer merely unreachable (no answer) is not reported so.
  using GoneFn = std::function<void(uint64_t peer)>;
  void SetGoneHandler(GoneFn gone);
  // Who hears that peer `by` refused this member as removed from the cluster at log index
  // `index` (from the writer or snapshot thread that dialed it; it must not block).
  using RemovedFn = std::function<void(uint64_t by, uint64_t index)>;
  void SetRemovedHandler(RemovedFn removed);
  // The members removed from the cluster, each with the log index of its removal (replacing the
  // last set): a hello from one is refused and answered so, and its connections in close now.
  void SetRemoved(std::map<uint64_t, uint64_t> removed_at);
  // Adds a member (or moves it to a new address); RemovePeer forgets it and closes its links.
  void AddPeer(uint64_t id, const std::string& address);
  void RemovePeer(uint64_t id);

  // Queues m for m.to. Never blocks on the network; a message for an unknown peer is dropped.
  void Send(RaftMessage m) override;
  // Dials `to` for this snapshot alone; the stream ends when `write` returns. Fails when `to`
  // is unknown or unreachable, a write fails or stalls past `write_timeout`, the receiver did
  // not take it (no answer within `snapshot_answer_timeout`), or `stop` is requested: its
  // connection is then shut down, so that a blocked write or wait returns at once.
  Status SendSnapshot(uint64_t to, const std::function<Status(const FrameWriter&)>& write,
                      std::stop_token stop) override;

  int port() const { return port_; }
  PeerLinkStats Stats(uint64_t peer);
  // Closes every connection and joins the threads. Idempotent.
  void Stop();

 private:
  struct Link;
  explicit PeerTransport(const PeerTransportOptions& opts);
  struct Reader;
  class SocketStopper;
  void AcceptLoop();
  void ReadLoop(Reader* r);
  // Reads a connection's hello: the sender's id (0: refused; a removed member is told so), and
  // whether it carries a snapshot. A sender taken is noted in `r`.
  uint64_t ReadHello(PeerConn& c, Reader* r, bool* snapshot);
  void ReadMessages(PeerConn& c, uint64_t sender);
  void ReadSnapshot(PeerConn& c, uint64_t sender);
  void WriteLoop(Link* link);
  // Connects to `address` (with TLS when the cluster has it) and sends the hello (the snapshot
  // one when `snapshot`); false when it cannot, with *refused set when nothing listened there.
  // With `stopper`, its socket is shut down once the stopper's stop is requested.
  bool Dial(uint64_t peer, const std::string& address, bool snapshot, PeerConn* out,
            bool* refused = nullptr, SocketStopper* stopper = nullptr);
  // Writes every queued message of link to c; false on an error (the link then reconnects).
  bool Flush(Link* link, const PeerConn& c);
  void DropQueued(Link* link);
  void ReportUnreachable(uint64_t peer);
  void ReportGone(uint64_t peer);
  void ReportRemoved(uint64_t by, uint64_t index);
  // Wakes `peer`'s writer to see now whether the peer closed its connection.
  void CheckLinkNow(uint64_t peer);
  void DeliverMessage(std::string message);

  PeerTransportOptions opts_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  std::mutex handlers_mu_;
  DeliverFn deliver_;
  UnreachableFn unreachable_;
  GoneFn gone_;
  RemovedFn removed_fn_;
  SnapshotFn snapshot_;

  std::mutex mu_;  // links_, readers_, removed_
  std::map<uint64_t, std::unique_ptr<Link>> links_;
  // Incoming connections: their sockets (shut down on Stop, or when their sender is removed)
  // and reader threads.
  struct Reader {
    int fd;
    std::thread thread;
    bool done = false;
    uint64_t sender = 0;  // once its hello was taken
  };
  std::list<Reader> readers_;
  std::map<uint64_t, uint64_t> removed_;  // member -> the index of its removal
};

// The hello's bytes, for tests that speak the protocol by hand.
std::string PeerHello(const std::string& cluster, uint64_t sender, bool snapshot = false);

}  // namespace mentat::raft

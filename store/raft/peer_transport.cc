#include "store/raft/peer_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <stop_token>

namespace mentat::raft {
namespace {

constexpr char kMagic[] = "MTRAFT1\n";
constexpr char kSnapMagic[] = "MTSNAP1\n";  // a snapshot's own connection
constexpr size_t kMagicLen = sizeof(kMagic) - 1;
static_assert(sizeof(kSnapMagic) == sizeof(kMagic));
constexpr size_t kMaxClusterName = 255;
constexpr char kRemovedAnswer = 2;  // the hello's answer to a member removed, with the index

void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
uint64_t GetU(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// "host:port" -> sockaddr_in. IPv4 literals and names (resolved once, here).
Result<sockaddr_in> ParseAddress(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return InvalidArgument("peer address " + address + " is not host:port");
  }
  std::string host = address.substr(0, colon);
  std::string port = address.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535) {
    return InvalidArgument("peer address " + address + ": port " + port + " is not 0-65535");
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) == 1) return sa;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0 || !res) {
    return InvalidArgument("peer address " + address + ": cannot resolve " + host + ": " +
                           gai_strerror(rc));
  }
  sa.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return sa;
}

// Blocks SIGPIPE on this thread while it lives: a write (TLS's write(2) cannot ask for
// MSG_NOSIGNAL) to a peer that closed fails with EPIPE instead of killing the process. One raised
// meanwhile is taken before the thread's mask is restored.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (sigismember(&old_, SIGPIPE)) return;
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t pipe_, old_;
};

// An interrupted TLS read or write, to try again.
bool Interrupted(SSL* ssl, int r) { return SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL && errno == EINTR; }

// Reads exactly n bytes; false on EOF, an error or a timeout (SO_RCVTIMEO).
bool ReadFull(const PeerConn& c, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r;
    if (c.ssl) {
      r = SSL_read(c.ssl, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (r <= 0 && Interrupted(c.ssl, static_cast<int>(r))) continue;
    } else {
      r = ::recv(c.fd, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
    }
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteFull(const PeerConn& c, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w;
    if (c.ssl) {
      w = SSL_write(c.ssl, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (w <= 0 && Interrupted(c.ssl, static_cast<int>(w))) continue;
    } else {
      w = ::send(c.fd, p, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
    }
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Ends a connection: its TLS, then its socket.
void Close(PeerConn& c) {
  if (c.ssl) SSL_free(c.ssl);
  if (c.fd >= 0) ::close(c.fd);
  c = PeerConn{};
}

void SetTimeout(int fd, int option, std::chrono::milliseconds d) {
  timeval tv{static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>((d.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv));
}

// A non-blocking connect bounded by `timeout`; the socket (blocking again), or -1 with
// *refused set when the peer's machine answered that nothing listens there (ECONNREFUSED).
int ConnectWithin(const sockaddr_in& sa, std::chrono::milliseconds timeout, bool* refused) {
  *refused = false;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  int err = rc < 0 ? errno : 0;
  if (rc < 0 && err == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    err = ETIMEDOUT;
    socklen_t len = sizeof(err);
    if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) rc = 0;
    else rc = -1;
  }
  if (rc != 0) {
    *refused = err == ECONNREFUSED;
    ::close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// A peer connection: no Nagle delay, and a dead one (the peer's machine gone, a partition) is
// found within `dead_after` rather than TCP's minutes of retransmission: unacknowledged data or
// unanswered keepalive probes past it abort the connection (TCP_USER_TIMEOUT). Without this, a
// connection written into during a partition stayed open after the heal, its retransmissions
// backed off for tens of seconds, and the leader's messages did not reach the member.
void TunePeerSocket(int fd, std::chrono::milliseconds dead_after) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle = 1, interval = 1;  // seconds: the fewest keepalive allows
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  auto ms = static_cast<unsigned int>(dead_after.count());
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
}

}  // namespace

std::string PeerHello(const std::string& cluster, uint64_t sender, bool snapshot) {
  std::string out(snapshot ? kSnapMagic : kMagic, kMagicLen);
  out.push_back(static_cast<char>(cluster.size()));
  out += cluster;
  PutU64(out, sender);
  return out;
}

// One peer's outgoing side: its queue, and the thread that writes it.
struct PeerTransport::Link {
  uint64_t id = 0;
  std::string address;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> queue;
  size_t queued_bytes = 0;
  bool closing = false;
  bool check_now = false;  // see whether the peer closed the connection without waiting
  int fd = -1;  // while connected; shut down to wake a stalled write
  PeerLinkStats stats;
  std::thread thread;
};

Result<std::unique_ptr<PeerTransport>> PeerTransport::Start(const PeerTransportOptions& opts) {
  if (opts.self == 0) return InvalidArgument("a member's id must not be 0");
  if (opts.cluster.empty() || opts.cluster.size() > kMaxClusterName) {
    return InvalidArgument("the cluster name must be 1 to 255 bytes");
  }
  std::unique_ptr<PeerTransport> t(new PeerTransport(opts));
  if (opts.listen.empty()) return t;  // dials out only (a cluster of one without a peer port)
  auto sa = ParseAddress(opts.listen);
  if (!sa) return std::unexpected(sa.error());
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(std::string("peer listener: socket: ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*sa), sizeof(*sa)) != 0 || ::listen(fd, 64) != 0) {
    std::string why = strerror(errno);
    ::close(fd);
    return Unavailable("cannot listen for peers on " + opts.listen + ": " + why);
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  t->listen_fd_ = fd;
  t->port_ = ntohs(bound.sin_port);
  t->acceptor_ = std::thread([p = t.get()] { p->AcceptLoop(); });
  return t;
}

PeerTransport::PeerTransport(const PeerTransportOptions& opts) : opts_(opts) {}

PeerTransport::~PeerTransport() { Stop(); }

void PeerTransport::SetHandlers(DeliverFn deliver, UnreachableFn unreachable, SnapshotFn snapshot) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  deliver_ = std::move(deliver);
  unreachable_ = std::move(unreachable);
  snapshot_ = std::move(snapshot);
}

void PeerTransport::AddPeer(uint64_t id, const std::string& address) {
  if (id == opts_.self) return;
  RemovePeer(id);
  auto link = std::make_unique<Link>();
  link->id = id;
  link->address = address;
  Link* l = link.get();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  links_[id] = std::move(link);
  l->thread = std::thread([this, l] { WriteLoop(l); });
}

void PeerTransport::RemovePeer(uint64_t id) {
  std::unique_ptr<Link> link;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = links_.find(id);
    if (it == links_.end()) return;
    link = std::move(it->second);
    links_.erase(it);
  }
  {
    std::lock_guard<std::mutex> lock(link->mu);
    link->closing = true;
    if (link->fd >= 0) ::shutdown(link->fd, SHUT_RDWR);
  }
  link->cv.notify_all();
  link->thread.join();
}

void PeerTransport::Send(RaftMessage m) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = links_.find(m.to);
  if (it == links_.end()) return;
  Link* l = it->second.get();
  bool lagging = false;
  {
    std::lock_guard<std::mutex> link_lock(l->mu);
    // A peer this far behind loses the message (as etcd's rafthttp does): Raft retransmits, and
    // the leader, hearing it is unreachable, probes it rather than streaming to it.
    lagging = l->queue.size() >= opts_.max_queue || l->queued_bytes + m.bytes.size() > opts_.max_queue_bytes;
    if (lagging) {
      ++l->stats.dropped;
    } else {
      l->queued_bytes += m.bytes.size();
      l->queue.push_back(std::move(m.bytes));
    }
  }
  if (lagging) {
    ReportUnreachable(l->id);
    return;
  }
  l->cv.notify_one();
}

PeerLinkStats PeerTransport::Stats(uint64_t peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = links_.find(peer);
  if (it == links_.end()) return {};
  std::lock_guard<std::mutex> link_lock(it->second->mu);
  return it->second->stats;
}

void PeerTransport::Stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) {
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    ::close(listen_fd_);
  }
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, l] : links_) ids.push_back(id);
  }
  for (uint64_t id : ids) RemovePeer(id);
  std::list<Reader> readers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : readers_) {
      if (!r.done) ::shutdown(r.fd, SHUT_RDWR);  // a done one's fd is closed, maybe reused
    }
    readers.swap(readers_);
  }
  for (auto& r : readers) r.thread.join();
}

void PeerTransport::AcceptLoop() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      spdlog::warn("raft peers: accept: {}", strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // EMFILE: let one close
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    // Reap readers whose connection ended.
    for (auto it = readers_.begin(); it != readers_.end();) {
      if (it->done) {
        it->thread.join();
        it = readers_.erase(it);
      } else {
        ++it;
      }
    }
    if (stopping_) {
      ::close(fd);
      return;
    }
    readers_.push_back(Reader{fd, {}, false});
    Reader* r = &readers_.back();
    r->thread = std::thread([this, r] {
      ReadLoop(r);
      std::lock_guard<std::mutex> lock(mu_);
      ::close(r->fd);
      r->done = true;
    });
  }
}

void PeerTransport::ReadLoop(Reader* r) {
  NoSigpipe no_sigpipe;
  const int fd = r->fd;
  PeerConn c{fd, nullptr};
  TunePeerSocket(fd, opts_.write_timeout);
  // The handshake and the hello: within hello_timeout.
  SetTimeout(fd, SO_RCVTIMEO, opts_.hello_timeout);
  SetTimeout(fd, SO_SNDTIMEO, opts_.hello_timeout);
  if (opts_.tls) {
    auto ssl = opts_.tls->Accept(fd);
    if (!ssl) {
      spdlog::warn("raft peers: refused a connection: {}", ssl.error().message());
      return;
    }
    c.ssl = *ssl;
  }
  SetTimeout(fd, SO_SNDTIMEO, opts_.write_timeout);
  bool snapshot = false;
  uint64_t sender = ReadHello(c, r, &snapshot);
  // The hello is answered: the dialer writes nothing into a connection that was refused.
  const char taken = 0;
  if (sender != 0 && !WriteFull(c, &taken, 1)) sender = 0;
  if (sender != 0 && snapshot) ReadSnapshot(c, sender);
  if (sender != 0 && !snapshot) {
    SetTimeout(fd, SO_RCVTIMEO, std::chrono::milliseconds(0));  // a quiet peer is not an error
    ReadMessages(c, sender);
  }
  if (c.ssl) SSL_free(c.ssl);  // the socket is the acceptor's to close
}

uint64_t PeerTransport::ReadHello(PeerConn& c, Reader* r, bool* snapshot) {
  // The hello: magic, the cluster's name, the sender's id.
  unsigned char head[kMagicLen + 1];
  if (!ReadFull(c, head, sizeof(head))) return 0;
  *snapshot = std::memcmp(head, kSnapMagic, kMagicLen) == 0;
  if (!*snapshot && std::memcmp(head, kMagic, kMagicLen) != 0) return 0;
  std::string cluster(head[kMagicLen], '\0');
  unsigned char id_bytes[8];
  if (!ReadFull(c, cluster.data(), cluster.size()) || !ReadFull(c, id_bytes, 8)) return 0;
  uint64_t sender = GetU(id_bytes, 8);
  if (cluster != opts_.cluster) {
    spdlog::warn("raft peers: refused member {} of cluster '{}' (this is '{}')", sender, cluster,
                 opts_.cluster);
    return 0;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (auto it = removed_.find(sender); it != removed_.end()) {
    const uint64_t index = it->second;
    lock.unlock();
    spdlog::warn(
        "raft peers: refused member {}: it was removed from the cluster (at index {}); told it so",
        sender, index);
    std::string answer(1, kRemovedAnswer);
    PutU64(answer, index);
    WriteFull(c, answer.data(), answer.size());
    return 0;
  }
  if (!links_.count(sender)) {
    lock.unlock();
    spdlog::warn("raft peers: refused a connection from {}, not a member", sender);
    return 0;
  }
  r->sender = sender;
  return sender;
}

namespace {

// One frame: its bytes, nullopt for the zero-length end of a snapshot, an error otherwise.
Result<std::optional<std::string>> ReadFrame(const PeerConn& c, size_t max, uint64_t sender) {
  unsigned char len_bytes[4];
  if (!ReadFull(c, len_bytes, 4)) return Unavailable("member " + std::to_string(sender) + " closed the connection");
  uint64_t len = GetU(len_bytes, 4);
  if (len > max) {
    return InvalidArgument("member " + std::to_string(sender) + " sent a frame of " + std::to_string(len) +
                           " bytes, over the limit of " + std::to_string(max));
  }
  if (len == 0) return std::nullopt;
  std::string frame(len, '\0');
  if (!ReadFull(c, frame.data(), len)) return Unavailable("member " + std::to_string(sender) + " closed the connection");
  return frame;
}

}  // namespace

void PeerTransport::ReadMessages(PeerConn& c, uint64_t sender) {
  for (;;) {
    auto frame = ReadFrame(c, opts_.max_message, sender);
    if (!frame && frame.error().code() == Code::kInvalidArgument) {
      spdlog::warn("raft peers: {}; closing its connection", frame.error().message());
    }
    if (!frame || !*frame) break;  // a zero-length frame has no place here
    DeliverMessage(std::move(**frame));
  }
  // The peer closed its connection to this member (its process may be gone): the connection to
  // it is checked now rather than at the next idle check, so that a gone peer is known at once.
  CheckLinkNow(sender);
}

void PeerTransport::CheckLinkNow(uint64_t peer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = links_.find(peer);
  if (it == links_.end()) return;
  Link* l = it->second.get();
  {
    std::lock_guard<std::mutex> link_lock(l->mu);
    l->check_now = true;
  }
  l->cv.notify_one();
}

void PeerTransport::ReadSnapshot(PeerConn& c, uint64_t sender) {
  // A stalled sender is given up on after write_timeout, as a stalled receiver is.
  SetTimeout(c.fd, SO_RCVTIMEO, opts_.write_timeout);
  SnapshotFn handler;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    handler = snapshot_;
  }
  bool ended = false;
  FrameReader next = [&]() -> Result<std::optional<std::string>> {
    if (ended) return std::optional<std::string>();
    auto frame = ReadFrame(c, opts_.max_message, sender);
    if (frame && !*frame) ended = true;
    return frame;
  };
  Status st = handler ? handler(sender, next) : FailedPrecondition("this member takes no snapshots yet");
  if (st && !ended) st = InvalidArgument("the snapshot went on past its end");
  if (!st) spdlog::warn("raft peers: a snapshot from member {} was refused: {}", sender, st.error().message());
  const char answer = st ? 0 : 1;
  WriteFull(c, &answer, 1);
}

// Shuts down the socket it watches once `stop` is requested, so that a write or read blocked on
// it returns at once; a socket watched after the request is shut down as it is watched. The
// socket is unwatched before it is closed: a late request must not shut down a reused number.
class PeerTransport::SocketStopper {
 public:
  explicit SocketStopper(std::stop_token stop) : on_stop_(std::move(stop), Shutter{this}) {}
  void Watch(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = fd;
    if (stopped_) ::shutdown(fd_, SHUT_RDWR);
  }
  void Unwatch() {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = -1;
  }

 private:
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  struct Shutter {
    SocketStopper* stopper;
    void operator()() const { stopper->Stop(); }
  };
  std::mutex mu_;
  int fd_ = -1;
  bool stopped_ = false;
  std::stop_callback<Shutter> on_stop_;  // last: it runs at once when already requested
};

Status PeerTransport::SendSnapshot(uint64_t to,
                                   const std::function<Status(const FrameWriter&)>& write,
                                   std::stop_token stop) {
  std::string address;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = links_.find(to);
    if (it == links_.end()) return NotFound("member " + std::to_string(to) + " is not a peer");
    address = it->second->address;
  }
  auto abandoned = [&] {
    return Unavailable("the snapshot to member " + std::to_string(to) +
                       " was abandoned: this member is stopping");
  };
  NoSigpipe no_sigpipe;
  SocketStopper stopper(stop);
  PeerConn c;
  if (!Dial(to, address, /*snapshot=*/true, &c, nullptr, &stopper)) {
    if (stop.stop_requested()) return abandoned();
    return Unavailable("member " + std::to_string(to) + " at " + address + " cannot be reached");
  }
  FrameWriter frame = [&](std::string_view bytes) {
    if (bytes.empty()) return true;
    std::string len;
    PutU32(len, static_cast<uint32_t>(bytes.size()));
    return WriteFull(c, len.data(), len.size()) && WriteFull(c, bytes.data(), bytes.size());
  };
  Status st = write(frame);
  const std::string end(4, '\0');
  if (st && !WriteFull(c, end.data(), end.size())) st = Unavailable("the connection to member " + std::to_string(to) + " failed");
  char answer = 1;
  if (st) {
    SetTimeout(c.fd, SO_RCVTIMEO, opts_.snapshot_answer_timeout);
    if (!ReadFull(c, &answer, 1)) st = Unavailable("member " + std::to_string(to) + " did not answer the snapshot");
    else if (answer != 0) st = Unavailable("member " + std::to_string(to) + " refused the snapshot (its log says why)");
  }
  stopper.Unwatch();
  Close(c);
  if (!st && stop.stop_requested()) return abandoned();
  return st;
}

void PeerTransport::DeliverMessage(std::string message) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (deliver_) deliver_(std::move(message));
}

void PeerTransport::SetGoneHandler(GoneFn gone) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  gone_ = std::move(gone);
}

void PeerTransport::SetRemovedHandler(RemovedFn removed) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  removed_fn_ = std::move(removed);
}

void PeerTransport::ReportRemoved(uint64_t by, uint64_t index) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (removed_fn_) removed_fn_(by, index);
}

void PeerTransport::SetRemoved(std::map<uint64_t, uint64_t> removed_at) {
  std::lock_guard<std::mutex> lock(mu_);
  removed_ = std::move(removed_at);
  // What a member just removed has open here ends now: it dials again and hears why.
  for (auto& r : readers_) {
    if (!r.done && removed_.count(r.sender)) ::shutdown(r.fd, SHUT_RDWR);
  }
}

void PeerTransport::ReportGone(uint64_t peer) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (gone_) gone_(peer);
}

void PeerTransport::ReportUnreachable(uint64_t peer) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  if (unreachable_) unreachable_(peer);
}

void PeerTransport::DropQueued(Link* l) {
  size_t n;
  {
    std::lock_guard<std::mutex> lock(l->mu);
    n = l->queue.size();
    l->stats.dropped += n;
    l->queue.clear();
    l->queued_bytes = 0;
  }
  if (n) ReportUnreachable(l->id);
}

namespace {

// The peer never writes on a connection this member dialed: readable means it closed it (or
// sent what it must not).
bool ClosedByPeer(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

bool PeerTransport::Dial(uint64_t peer, const std::string& address, bool snapshot, PeerConn* out,
                         bool* refused, SocketStopper* stopper) {
  bool no_listener = false;
  if (!refused) refused = &no_listener;
  *refused = false;
  auto sa = ParseAddress(address);
  if (!sa) {
    spdlog::warn("raft peers: member {}: {}", peer, sa.error().message());
    return false;
  }
  PeerConn c{ConnectWithin(*sa, opts_.dial_timeout, refused), nullptr};
  if (c.fd < 0) return false;
  if (stopper) stopper->Watch(c.fd);
  auto fail = [&] {
    if (stopper) stopper->Unwatch();
    Close(c);
    return false;
  };
  TunePeerSocket(c.fd, opts_.write_timeout);
  if (opts_.tls) {
    SetTimeout(c.fd, SO_RCVTIMEO, opts_.dial_timeout);
    SetTimeout(c.fd, SO_SNDTIMEO, opts_.dial_timeout);
    auto ssl = opts_.tls->Connect(c.fd, address.substr(0, address.rfind(':')));
    if (!ssl) {
      spdlog::warn("raft peers: member {}: {}", peer, ssl.error().message());
      return fail();
    }
    c.ssl = *ssl;
    SetTimeout(c.fd, SO_RCVTIMEO, std::chrono::milliseconds(0));
  }
  SetTimeout(c.fd, SO_SNDTIMEO, opts_.write_timeout);
  std::string hello = PeerHello(opts_.cluster, opts_.self, snapshot);
  SetTimeout(c.fd, SO_RCVTIMEO, opts_.hello_timeout);
  char answer = 1;
  if (!WriteFull(c, hello.data(), hello.size()) || !ReadFull(c, &answer, 1) || answer != 0) {
    unsigned char at[8];  // a member removed: the index of its removal follows
    if (answer == kRemovedAnswer && ReadFull(c, at, sizeof(at))) ReportRemoved(peer, GetU(at, 8));
    return fail();
  }
  SetTimeout(c.fd, SO_RCVTIMEO, std::chrono::milliseconds(0));
  *out = c;
  return true;
}

bool PeerTransport::Flush(Link* l, const PeerConn& c) {
  // Written in writes of about kFlushBytes, so a long queue is not copied into one buffer.
  constexpr size_t kFlushBytes = 256 << 10;
  for (;;) {
    std::string out;
    size_t taken = 0;
    {
      std::lock_guard<std::mutex> lock(l->mu);
      while (!l->queue.empty() && (taken == 0 || out.size() + l->queue.front().size() <= kFlushBytes)) {
        const std::string& m = l->queue.front();
        PutU32(out, static_cast<uint32_t>(m.size()));
        out += m;
        l->queued_bytes -= m.size();
        l->queue.pop_front();
        ++taken;
      }
    }
    if (taken == 0) return true;
    const bool written = WriteFull(c, out.data(), out.size());
    std::lock_guard<std::mutex> lock(l->mu);
    if (!written) {
      l->stats.dropped += taken;
      return false;
    }
    l->stats.sent += taken;
  }
}

void PeerTransport::WriteLoop(Link* l) {
  NoSigpipe no_sigpipe;
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(l->mu);
      if (l->closing) return;
    }
    PeerConn c;
    bool refused = false;
    if (!Dial(l->id, l->address, /*snapshot=*/false, &c, &refused)) {
      DropQueued(l);
      if (refused) ReportGone(l->id);
      std::unique_lock<std::mutex> lock(l->mu);
      l->cv.wait_for(lock, backoff, [&] { return l->closing; });
      backoff = std::min(backoff * 2, opts_.max_backoff);
      continue;
    }
    backoff = std::chrono::milliseconds(50);
    {
      std::lock_guard<std::mutex> lock(l->mu);
      if (l->closing) {
        Close(c);
        return;
      }
      l->fd = c.fd;
      l->stats.connected = true;
      ++l->stats.dials;
    }
    bool ok = true;
    while (ok) {
      {
        std::unique_lock<std::mutex> lock(l->mu);
        l->cv.wait_for(lock, opts_.idle_check, [&] { return l->closing || !l->queue.empty() || l->check_now; });
        if (l->closing) break;
        l->check_now = false;
        if (l->queue.empty()) {
          lock.unlock();
          ok = !ClosedByPeer(c.fd);
          continue;
        }
      }
      ok = Flush(l, c);
    }
    {
      std::lock_guard<std::mutex> lock(l->mu);
      l->fd = -1;
      l->stats.connected = false;
    }
    Close(c);
    if (!ok) ReportUnreachable(l->id);
    std::lock_guard<std::mutex> lock(l->mu);
    if (l->closing) return;
  }
}

}  // namespace mentat::raft

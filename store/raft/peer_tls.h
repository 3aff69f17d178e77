// TLS on the peer port, with the cluster's own CA (etcd's --peer-cert-file, --peer-key-file,
// --peer-trusted-ca-file with --peer-client-cert-auth): every member presents a certificate the
// CA signed, both ways. The dialing member checks that the certificate it is shown was issued by
// the CA for the host it dialed (its IP address or DNS name in the certificate's
// subjectAltName); the accepting member checks that the dialer's was issued by the CA. A
// connection that fails either check is closed before a byte of Raft is read.
//
// Session tickets are off: nothing is sent after the handshake unless asked, so a member that
// only writes on a connection can tell from its readability that the peer closed it.
#pragma once

#include <memory>
#include <string>

#include "apis/error.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace mentat::raft {

struct PeerTlsFiles {
  std::string cert;  // this member's certificate chain (PEM)
  std::string key;   // its private key (PEM)
  std::string ca;    // the cluster CA's certificate (PEM): the only issuer trusted
};

class PeerTls {
 public:
  // Loads the files; InvalidArgument naming the file and what is wrong with it.
  static Result<std::shared_ptr<PeerTls>> Load(const PeerTlsFiles& files);
  ~PeerTls();
  PeerTls(const PeerTls&) = delete;
  PeerTls& operator=(const PeerTls&) = delete;

  // The TLS side of a connected socket, blocking (the socket's timeouts bound each step).
  // Connect: as the dialing member, checking the peer's certificate for `host`. Accept: as the
  // accepting member, requiring the dialer's certificate. The error says why (the handshake, or
  // the certificate and what is wrong with it).
  Result<SSL*> Connect(int fd, const std::string& host);
  Result<SSL*> Accept(int fd);

 private:
  PeerTls() = default;
  SSL_CTX* client_ = nullptr;
  SSL_CTX* server_ = nullptr;
};

}  // namespace mentat::raft

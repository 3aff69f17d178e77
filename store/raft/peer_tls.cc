#include "store/raft/peer_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace mentat::raft {
namespace {

// OpenSSL's queued errors, as one line (and the queue emptied).
std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no detail" : out;
}

Result<SSL_CTX*> MakeContext(const PeerTlsFiles& files, bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx) return Internal("peer TLS: " + SslErrors());
  auto fail = [&](const std::string& what, const std::string& file) {
    std::string why = SslErrors();
    SSL_CTX_free(ctx);
    return InvalidArgument("peer TLS: " + what + " " + file + ": " + why);
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
    return fail("cannot use the certificate", files.cert);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail("cannot use the key", files.key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) return fail("the key does not match the certificate", files.cert);
  if (SSL_CTX_load_verify_locations(ctx, files.ca.c_str(), nullptr) != 1) {
    return fail("cannot use the CA", files.ca);
  }
  // Only the cluster's CA is trusted: not the system's.
  SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                     nullptr);
  if (server) {
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  return ctx;
}

std::string VerifyError(SSL* ssl) {
  long v = SSL_get_verify_result(ssl);
  return v == X509_V_OK ? SslErrors() : std::string("certificate: ") + X509_verify_cert_error_string(v);
}

}  // namespace

Result<std::shared_ptr<PeerTls>> PeerTls::Load(const PeerTlsFiles& files) {
  std::shared_ptr<PeerTls> tls(new PeerTls());
  MT_ASSIGN_OR_RETURN(tls->client_, MakeContext(files, false));
  MT_ASSIGN_OR_RETURN(tls->server_, MakeContext(files, true));
  return tls;
}

PeerTls::~PeerTls() {
  SSL_CTX_free(client_);
  SSL_CTX_free(server_);
}

Result<SSL*> PeerTls::Connect(int fd, const std::string& host) {
  SSL* ssl = SSL_new(client_);
  if (!ssl) return Internal("peer TLS: " + SslErrors());
  // The certificate must name the host dialed: an IP address as an IP SAN, a name as a DNS SAN.
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    SSL_set_tlsext_host_name(ssl, host.c_str());
  }
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    std::string why = VerifyError(ssl);
    SSL_free(ssl);
    return Unavailable("peer TLS handshake with " + host + " failed: " + why);
  }
  return ssl;
}

Result<SSL*> PeerTls::Accept(int fd) {
  SSL* ssl = SSL_new(server_);
  if (!ssl) return Internal("peer TLS: " + SslErrors());
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) {
    std::string why = VerifyError(ssl);
    SSL_free(ssl);
    return Unavailable("peer TLS handshake failed: " + why);
  }
  return ssl;
}

}  // namespace mentat::raft

// HTTPS through the real server (--tls-cert/--tls-key): a client that trusts the CA gets
// through, with tokens and watch streams working as over HTTP; a client that does not trust
// it, or speaks plain HTTP, does not; a key that does not match is refused at startup.
#include <gtest/gtest.h>
#include <httplib.h>

#include "apis/sha256.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("tls");
    // A throwaway CA, and a server certificate for 127.0.0.1 signed by it.
    std::string err = MakeTestCertificates(dir_);
    ASSERT_EQ(err, "");
    port_ = FreePort();
  }
  std::unique_ptr<httplib::Client> Client(bool trust_ca) {
    auto cli = std::make_unique<httplib::Client>("https://127.0.0.1:" + std::to_string(port_));
    cli->enable_server_certificate_verification(true);
    if (trust_ca) cli->set_ca_cert_path((dir_ + "/ca.crt").c_str());
    cli->set_connection_timeout(2, 0);
    cli->set_read_timeout(5, 0);
    return cli;
  }

  std::string dir_;
  int port_ = 0;
};

TEST_F(TlsTest, TrustedClientsGetThroughOthersDoNot) {
  Process server(ServerArgv(port_, dir_ + "/data",
                            {"--tls-cert", dir_ + "/server.crt", "--tls-key", dir_ + "/server.key",
                             "--auth", "tokens", "--bootstrap-token"}),
                 dir_ + "/server.log");
  auto cli = Client(true);
  ASSERT_TRUE(WaitFor([&] {
    auto r = cli->Get("/healthz");
    return r && r->status == 200;
  }, 15s)) << ReadFile(dir_ + "/server.log");
  std::string log = ReadFile(dir_ + "/server.log");
  auto at = log.find("bootstrap admin token");
  ASSERT_NE(at, std::string::npos);
  auto start = log.find('\n', at) + 1;
  std::string token = log.substr(start, log.find('\n', start) - start);

  // Tokens over HTTPS: 401 without, 201 with.
  std::string svc = R"({"name":"web","driver":"exec","command":"/bin/sleep","args":["600"]})";
  auto denied = cli->Put("/v1/services/web", svc, "application/json");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  cli->set_bearer_token_auth(token.c_str());
  // A watch stream over TLS, from a list's revision, sees the write.
  auto list = cli->Get("/v1/services");
  ASSERT_TRUE(list && list->status == 200);
  std::string rv = Json::parse(list->body)["resourceVersion"];
  auto wcli = Client(true);
  wcli->set_bearer_token_auth(token.c_str());
  std::atomic<bool> seen{false};
  std::thread watcher([&] {
    std::string buf;
    wcli->Get("/v1/services?watch=true&resourceVersion=" + rv, [&](const char* d, size_t n) {
      buf.append(d, n);
      if (buf.find("\"ADDED\"") != std::string::npos) seen = true;
      return !seen.load();
    });
  });
  auto created = cli->Put("/v1/services/web", svc, "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201) << created->body;
  EXPECT_TRUE(WaitFor([&] { return seen.load(); }, 10s)) << "no watch event over TLS";
  if (!seen) {
    wcli->stop();
  }
  watcher.join();

  // An artifact over TLS: its body streams through the server's upload gate on a TLS
  // connection to the file, and comes back the same.
  std::string blob(3 << 20, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>((i * 2654435761u) >> 24);
  std::string digest = Sha256::Of(blob);
  auto up = cli->Put("/v1/artifacts/" + digest, blob, "application/octet-stream");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->status, 201) << up->body;
  auto down = cli->Get("/v1/artifacts/" + digest);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->status, 200);
  EXPECT_TRUE(down->body == blob) << "the artifact came back different over TLS";

  // A client that does not trust the CA fails the handshake.
  auto untrusting = Client(false);
  auto r = untrusting->Get("/healthz");
  EXPECT_FALSE(r) << "a client without the CA was let in";
  if (!r) {
    EXPECT_EQ(r.error(), httplib::Error::SSLServerVerification);
  }
  // Plain HTTP to the HTTPS port gets no HTTP answer.
  httplib::Client plain("127.0.0.1", port_);
  plain.set_read_timeout(3, 0);
  auto p = plain.Get("/healthz");
  EXPECT_TRUE(!p || p->status != 200);
}

TEST_F(TlsTest, MismatchedOrHalfConfiguredTlsIsRefusedAtStartup) {
  // The CA's key is not the certificate's.
  auto r = RunCommand(ServerArgv(port_, dir_ + "/data",
                                 {"--tls-cert", dir_ + "/server.crt", "--tls-key", dir_ + "/ca.key"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("does not match"), std::string::npos) << r.err;
  auto half = RunCommand(ServerArgv(port_, dir_ + "/data2", {"--tls-cert", dir_ + "/server.crt"}));
  EXPECT_NE(half.exit_code, 0);
  EXPECT_NE(half.err.find("--tls-key"), std::string::npos) << half.err;
}

}  // namespace
}  // namespace mentat::e2e

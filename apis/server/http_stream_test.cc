// HttpStream over real sockets on 127.0.0.1, plain and TLS: a stream's last chunk and its end
// reach the client however the loop orders the write that drains the buffer and the code that
// writes more. Over TLS, libevent 2.1 reports "the buffer drained" one loop turn late; a stream
// ended within that turn once had its last bytes left unsent, the client waiting for them.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "apis/server/http_server.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

// A self-signed certificate for 127.0.0.1, made with openssl into dir.
bool MakeCertificate(const std::string& dir) {
  std::string cmd = "/usr/bin/openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                    "-nodes -days 2 -subj /CN=127.0.0.1 -keyout " +
                    dir + "/server.key -out " + dir + "/server.crt >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

class HttpStreamTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    HttpServerOptions o;
    o.workers = 2;
    o.idle_timeout = std::chrono::seconds(30);
    if (tls()) {
      char tmpl[] = "/tmp/http-stream-test-XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
      ASSERT_TRUE(MakeCertificate(dir_)) << "openssl could not make a certificate";
      o.tls_cert = dir_ + "/server.crt";
      o.tls_key = dir_ + "/server.key";
    }
    server_ = std::make_unique<HttpServer>(o);
    // The first chunk goes out at once; the rest and the end follow from a timer on the next
    // loop turn, the turn in which the socket's write event takes the first chunk.
    server_->Route("GET", "/two-parts", [](const HttpRequest&, HttpResponse& res) {
      res.content_type = "text/plain";
      res.stream = [](const std::shared_ptr<HttpStream>& s) {
        s->Write(std::string(100, 'a'));
        s->Every(0ms, [s] {
          s->Write(std::string(162, 'b'));
          s->End();
        });
      };
    });
    // Ends after the client has taken everything: nothing is left to write but the end.
    server_->Route("GET", "/end-after-drain", [](const HttpRequest&, HttpResponse& res) {
      res.content_type = "text/plain";
      res.stream = [](const std::shared_ptr<HttpStream>& s) {
        s->Write("all of it");
        s->Every(20ms, [s] {
          if (s->Pending() == 0) s->End();
        });
      };
    });
    // Ends without a byte of body.
    server_->Route("GET", "/empty", [](const HttpRequest&, HttpResponse& res) {
      res.stream = [](const std::shared_ptr<HttpStream>& s) { s->End(); };
    });
    auto port = server_->Start();
    ASSERT_TRUE(port.has_value()) << port.error().message();
    port_ = *port;
  }
  void TearDown() override {
    server_.reset();
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  bool tls() const { return GetParam(); }

  // A client whose read gives up after 5 s: a body that never ends fails the test, not hangs it.
  std::unique_ptr<httplib::Client> Client(bool keep_alive) {
    std::string base = (tls() ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
    auto c = std::make_unique<httplib::Client>(base);
    c->enable_server_certificate_verification(false);
    c->set_read_timeout(5, 0);
    c->set_keep_alive(keep_alive);
    return c;
  }

  std::unique_ptr<HttpServer> server_;
  std::string dir_;
  int port_ = 0;
};

TEST_P(HttpStreamTest, TheLastChunkAndTheEndAlwaysArrive) {
  for (bool keep_alive : {false, true}) {
    auto cli = Client(keep_alive);
    for (int i = 0; i < 60; ++i) {
      auto r = cli->Get("/two-parts");
      ASSERT_TRUE(r) << "request " << i << " (keep-alive " << keep_alive
                     << "): " << httplib::to_string(r.error());
      ASSERT_EQ(r->status, 200);
      ASSERT_EQ(r->body, std::string(100, 'a') + std::string(162, 'b')) << "request " << i;
    }
  }
}

TEST_P(HttpStreamTest, AStreamEndedWithNothingLeftToWriteEnds) {
  auto cli = Client(/*keep_alive=*/true);
  for (int i = 0; i < 20; ++i) {
    auto r = cli->Get("/end-after-drain");
    ASSERT_TRUE(r) << "request " << i << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->body, "all of it");
  }
}

TEST_P(HttpStreamTest, AnEmptyStreamEnds) {
  auto cli = Client(/*keep_alive=*/true);
  for (int i = 0; i < 20; ++i) {
    auto r = cli->Get("/empty");
    ASSERT_TRUE(r) << "request " << i << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "");
  }
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, HttpStreamTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tls" : "Plain"; });

}  // namespace
}  // namespace mentat

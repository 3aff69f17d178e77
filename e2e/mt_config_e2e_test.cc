// How mt finds and authenticates to its server, against a real mentat-server: --server and
// --token beat MENTAT_ADDR / MENTAT_TOKEN, which beat ~/.mentat/config ($HOME honoured); a
// malformed config file is an error naming the file and line; https with --ca-file,
// MENTAT_CA_FILE or ca_file: verifies the server's certificate; 401 and 403 print clearly and
// exit 4. A test front (an httplib SSLServer with a CA made here by openssl) sits before the
// real server and records the Authorization header of every request, which shows exactly what
// mt sent and that nothing goes out over an unverified connection. The server's own tokens and
// TLS, with mt, are tested in secure_cluster_e2e_test.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <mutex>
#include <regex>
#include <thread>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kGoodToken = "s3cret-token";
constexpr const char* kReaderToken = "reader-token";

// The front: https (or http), checks "Authorization: Bearer", forwards to the real server.
class AuthFront {
 public:
  AuthFront(const std::string& dir, int upstream, bool tls) : upstream_(upstream) {
    if (tls) {
      server_ = std::make_unique<httplib::SSLServer>((dir + "/server.crt").c_str(),
                                                     (dir + "/server.key").c_str());
    } else {
      server_ = std::make_unique<httplib::Server>();
    }
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Forward(req, res);
    };
    server_->Get(".*", handler);
    server_->Put(".*", handler);
    server_->Post(".*", handler);
    server_->Delete(".*", handler);
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    WaitFor([&] { return server_->is_running(); }, 5s);
  }
  ~AuthFront() {
    server_->stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<std::string> Seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void Forward(const httplib::Request& req, httplib::Response& res) {
    std::string auth = req.get_header_value("Authorization");
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(auth);
    }
    auto refuse = [&](int code, const std::string& reason, const std::string& message) {
      res.status = code;
      res.set_content(nlohmann::json({{"code", code},
                                      {"reason", reason},
                                      {"message", message},
                                      {"details", nlohmann::json::array()}})
                          .dump(),
                      "application/json");
    };
    if (auth.empty()) return refuse(401, "Unauthorized", "a bearer token is required");
    if (auth != std::string("Bearer ") + kGoodToken &&
        auth != std::string("Bearer ") + kReaderToken) {
      return refuse(401, "Unauthorized", "the bearer token is not valid");
    }
    if (auth == std::string("Bearer ") + kReaderToken && req.method != "GET") {
      return refuse(403, "Forbidden", "token reader-token may only read");
    }
    httplib::Client up("127.0.0.1", upstream_);
    up.set_read_timeout(10, 0);
    httplib::Result r =
        req.method == "GET"    ? up.Get(req.target.c_str())
        : req.method == "PUT"  ? up.Put(req.target.c_str(), req.body, "application/json")
        : req.method == "POST" ? up.Post(req.target.c_str(), req.body, "application/json")
                               : up.Delete(req.target.c_str());
    if (!r) return refuse(503, "ServiceUnavailable", "upstream unreachable");
    res.status = r->status;
    res.set_content(r->body, "application/json");
  }

  int upstream_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> seen_;
};

class MtConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("mt-config");
    home_ = dir_ + "/home";
    fs::create_directories(home_ + "/.mentat");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log");
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
    WriteFile(dir_ + "/web.yaml", "name: web\ndriver: exec\ncommand: /bin/true\n");
  }

  // mt with a clean environment: only HOME (ours) and the variables given.
  CommandResult Mt(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {"/usr/bin/env",     "-u",           "MENTAT_ADDR",    "-u",
                                     "MENTAT_TOKEN",     "-u",           "MENTAT_CA_FILE", "-u",
                                     "MENTAT_NAMESPACE", "HOME=" + home_};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(Runfile("cmd/mt/mt"));
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  void Config(const std::string& text) { WriteFile(home_ + "/.mentat/config", text); }
  std::string Url(int port, const std::string& scheme = "http") {
    return scheme + "://127.0.0.1:" + std::to_string(port);
  }

  std::string dir_, home_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(MtConfigTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  int dead = FreePort();  // nothing listens there
  std::string config = home_ + "/.mentat/config";

  // The file alone: its server is used, and an unreachable one is named with its line.
  Config("# where mt goes\nserver: " + Url(dead) + "\n");
  auto r = Mt({"get", "services"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("cannot reach the Mentat server at " + Url(dead)), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("(server from " + config + ":2)"), std::string::npos) << r.err;
  Config("server: " + Url(port_) + "\n");
  r = Mt({"get", "services"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("No services found"), std::string::npos) << r.err;

  // The environment beats the file.
  Config("server: " + Url(dead) + "\n");
  r = Mt({"apply", "-f", dir_ + "/web.yaml"}, {"MENTAT_ADDR=" + Url(port_)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web created\n");

  // The flag beats both, before or after the command.
  r = Mt({"--server", Url(dead), "get", "services"}, {"MENTAT_ADDR=" + Url(port_)});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("(server from --server)"), std::string::npos) << r.err;
  Config("server: " + Url(dead) + "\n");
  r = Mt({"get", "services", "-o", "name", "-s", Url(port_)}, {"MENTAT_ADDR=" + Url(dead)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web\n");

  // Nothing anywhere: the default, as `mt config view` shows, with each setting's source.
  fs::remove(config);
  auto view = Mt({"config", "view"});
  EXPECT_EQ(view.exit_code, 0);
  EXPECT_NE(view.out.find("server: http://127.0.0.1:4646    # from default"), std::string::npos)
      << view.out;
  view = Mt({"config", "view", "--token", "abc"}, {"MENTAT_ADDR=" + Url(port_)});
  EXPECT_NE(view.out.find("server: " + Url(port_) + "    # from MENTAT_ADDR"), std::string::npos)
      << view.out;
  EXPECT_NE(view.out.find("token: <set, 3 characters>    # from --token"), std::string::npos)
      << view.out;
  EXPECT_EQ(view.out.find("abc"), std::string::npos) << "the token itself is never printed";

  // The namespace, from the file.
  Config("server: " + Url(port_) + "\nnamespace: team-a\n");
  ASSERT_EQ(Mt({"apply", "-f", dir_ + "/web.yaml"}).exit_code, 0);
  EXPECT_EQ(Mt({"get", "services", "-A", "-o", "name"}).out, "service/web\nservice/web\n");
  EXPECT_NE(Mt({"get", "services", "web", "-o", "json"}).out.find("\"namespace\": \"team-a\""),
            std::string::npos);
}

TEST_F(MtConfigTest, MalformedConfigFileNamesFileAndLine) {
  std::string config = home_ + "/.mentat/config";
  Config("server: " + Url(port_) + "\nsever: http://typo:1\n");
  auto r = Mt({"get", "services"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("invalid config file " + config), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(config + ":2: unknown setting \"sever\""), std::string::npos) << r.err;

  Config("server: " + Url(port_) + "\n  token: " + kGoodToken + "\nnamespace: x\n");
  r = Mt({"get", "services"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(config + ":2:8: illegal map value"), std::string::npos) << r.err;

  Config("server:\n  - " + Url(port_) + "\n");
  r = Mt({"get", "services"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(std::regex_search(r.err, std::regex(config + ":[12]: server: must be a non-empty "
                                                           "string")))
      << r.err;
  // A flag does not make a broken file acceptable: it would hide the mistake.
  r = Mt({"--server", Url(port_), "get", "services"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(MtConfigTest, TokenIsSentAsBearerAndRefusalsAreClear) {
  AuthFront front(dir_, port_, /*tls=*/false);
  std::string config = home_ + "/.mentat/config";
  Config("server: " + Url(front.port()) + "\ntoken: wrong-from-file\n");

  // No token anywhere: 401, exit 4, and how to give one.
  fs::remove(config);
  auto r = Mt({"get", "services"}, {"MENTAT_ADDR=" + Url(front.port())});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("unauthorized: a bearer token is required (no token was sent: set "
                       "--token, MENTAT_TOKEN or token: in ~/.mentat/config)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(front.Seen().back(), "");

  // The file's token is refused; the environment's is accepted and wins over the file's.
  Config("server: " + Url(front.port()) + "\ntoken: wrong-from-file\n");
  r = Mt({"get", "services"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("unauthorized: the bearer token is not valid (the token from " + config +
                       ":2 was refused"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(front.Seen().back(), "Bearer wrong-from-file");
  r = Mt({"apply", "-f", dir_ + "/web.yaml"}, {std::string("MENTAT_TOKEN=") + kGoodToken});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web created\n");
  EXPECT_EQ(front.Seen().back(), std::string("Bearer ") + kGoodToken);

  // The flag wins over the environment.
  r = Mt({"--token", "wrong-flag", "get", "services"}, {std::string("MENTAT_TOKEN=") + kGoodToken});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("the token from --token was refused"), std::string::npos) << r.err;

  // 403 for the caller (no field details): "forbidden:", exit 4; reads still work.
  r = Mt({"delete", "service", "web"}, {std::string("MENTAT_TOKEN=") + kReaderToken});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("forbidden: token reader-token may only read"), std::string::npos) << r.err;
  r = Mt({"get", "services", "-o", "name"}, {std::string("MENTAT_TOKEN=") + kReaderToken});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web\n");

  // A 403 from policy (admission, with field details) stays an input error: exit 1.
  WriteFile(dir_ + "/denied.yaml",
            "name: d\ndriver: docker\nimage: x\nvolumes:\n  - source: /var/run/docker.sock\n"
            "    target: /s\nsecurity:\n  profile: docker-hardened\n");
  r = Mt({"apply", "-f", dir_ + "/denied.yaml"}, {std::string("MENTAT_TOKEN=") + kGoodToken});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(dir_ + "/denied.yaml:5:"), std::string::npos) << r.err;
}

TEST_F(MtConfigTest, HttpsVerifiesTheServerWithTheGivenCa) {
  ASSERT_EQ(MakeTestCertificates(dir_), "");
  // A second CA that signed nothing we serve.
  std::filesystem::create_directories(dir_ + "/other");
  ASSERT_EQ(MakeTestCertificates(dir_ + "/other"), "");
  AuthFront front(dir_, port_, /*tls=*/true);
  std::string https = Url(front.port(), "https");
  std::vector<std::string> token = {std::string("MENTAT_TOKEN=") + kGoodToken};
  auto with = [&](std::vector<std::string> env) {
    env.insert(env.end(), token.begin(), token.end());
    return env;
  };

  // --ca-file.
  auto r = Mt({"--server", https, "--ca-file", dir_ + "/ca.crt", "apply", "-f", dir_ + "/web.yaml"},
              token);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web created\n");
  // MENTAT_CA_FILE.
  r = Mt({"get", "services", "-o", "name"},
         with({"MENTAT_ADDR=" + https, "MENTAT_CA_FILE=" + dir_ + "/ca.crt"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web\n");
  // ca_file: in the config file, with the server there too.
  Config("server: " + https + "\nca_file: " + dir_ + "/ca.crt\n");
  r = Mt({"get", "services", "web", "-o", "name"}, token);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/web\n");

  // A CA that did not sign the certificate, or none (the system's CAs): refused, never sent.
  size_t sent = front.Seen().size();
  r = Mt({"--ca-file", dir_ + "/other/ca.crt", "get", "services"}, token);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot verify the TLS certificate of " + https), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--ca-file, MENTAT_CA_FILE or ca_file:"), std::string::npos) << r.err;
  fs::remove(home_ + "/.mentat/config");
  r = Mt({"get", "services"}, with({"MENTAT_ADDR=" + https}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot verify the TLS certificate"), std::string::npos) << r.err;
  EXPECT_EQ(front.Seen().size(), sent) << "a request went out over an unverified connection";

  // A CA file that does not exist is named.
  r = Mt({"--server", https, "--ca-file", dir_ + "/nope.pem", "get", "services"}, token);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("CA file " + dir_ + "/nope.pem: no such file"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mentat::e2e

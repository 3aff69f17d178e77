// App rootfs artifacts end to end, with the real server (RocksDB on disk) and the real mt:
// `mt apply` packs a relative rootfs, uploads it once (a re-apply sends nothing) and the
// server stores it under its sha256; a digest that does not match, a body over the limit and
// a relative rootfs sent past mt are refused with the API's errors and leave no file; the
// agent fetches an artifact once for two allocations, and a hostile one fails the start with
// a clear message; unreferenced artifacts are collected, referenced ones never. On the node:
// issue 17's zstd bomb fails the start naming the limit and its flag, and unpacked trees no
// task uses are collected while a running task's tree stays, across a kill -9 of the agent.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "apis/artifacts/archive_testing.h"
#include "apis/artifacts/pack.h"
#include "apis/client.h"
#include "apis/sha256.h"
#include "e2e/server_fixture.h"
#include "runtimes/agent/artifacts.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string Sha256(const std::string& bytes) { return mentat::Sha256::Of(bytes); }

class ArtifactsTest : public ServerFixture {
 protected:
  void SetUp() override { signal(SIGPIPE, SIG_IGN); }
  void TearDown() override {
    ServerFixture::TearDown();  // with the agent still up, so that it stops the workloads
    agent_.reset();
  }

  // An app directory and a manifest next to it that names it as ./app.
  std::string WriteApp(const std::string& name, const std::string& extra = "") {
    fs::path proj = fs::path(dir_) / "proj";
    fs::create_directories(proj / "app/lib");
    std::ofstream(proj / "app/main.py") << "print('hello from " << name << "')\n";
    std::ofstream(proj / "app/lib/util.py") << "X = 1\n";
    std::ofstream(proj / "app/run.sh") << "#!/bin/sh\nexec python3 main.py\n";
    fs::permissions(proj / "app/run.sh", fs::perms(0755));
    if (!fs::exists(proj / "app/current")) fs::create_symlink("main.py", proj / "app/current");
    std::string manifest = (proj / (name + ".yaml")).string();
    WriteFile(manifest, "name: " + name + "\ndriver: sandbox\nbase: python312\nrootfs: ./app\n" +
                            "command: /usr/bin/python3\n" + extra);
    return manifest;
  }
  std::string ArtifactFile(const std::string& digest) {
    return dir_ + "/data/artifacts/sha256/" + digest.substr(7);
  }
  size_t FilesIn(const std::string& d) {
    size_t n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(d, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
    return n;
  }
  // The sum of mentat_http_requests_total for a route and method, over all codes.
  double Requests(const std::string& route, const std::string& method) {
    auto [code, text] = HttpGet(port_, "/metrics");
    double sum = 0;
    std::regex re("mentat_http_requests_total\\{route=\"" + route + "\",method=\"" + method +
                  "\",code=\"[0-9]+\"\\} ([0-9.]+)");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
         ++it) {
      sum += std::stod((*it)[1]);
    }
    return sum;
  }
  // The pid of the Running allocation of a service, or 0.
  int RunningPid(const std::string& service) {
    for (const auto& a : Get("/v1/allocations").value("items", Json::array())) {
      const Json& st = a.value("status", Json::object());
      if (a["metadata"].value("name", "").rfind(service + "-", 0) == 0 &&
          st.value("phase", "") == "Running") {
        return st.value("pid", 0);
      }
    }
    return 0;
  }
  // Waits (30 s at most) until an allocation's status message holds `part`; `message` is the
  // last one seen.
  bool WaitForAllocationMessage(const std::string& part, std::string& message) {
    return WaitFor(
        [&] {
          for (const auto& al : Get("/v1/allocations").value("items", Json::array())) {
            message = al.value("status", Json::object()).value("message", "");
          }
          return message.find(part) != std::string::npos;
        },
        30s);
  }
  httplib::Result PutArtifact(const std::string& digest, const std::string& body) {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_default_headers({{"Accept-Encoding", "identity"}});
    return cli.Put("/v1/artifacts/" + digest, body, "application/octet-stream");
  }

  std::unique_ptr<Process> agent_;  // a node agent of the test's own, when it starts one
};

TEST_F(ArtifactsTest, ApplyUploadsOnceAndTheServerKeepsItUnderItsHash) {
  StartWith("artifacts-apply", {});
  std::string manifest = WriteApp("web");
  auto first = Mt({"apply", "-f", manifest});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "service/web created\n");
  EXPECT_NE(first.err.find("packed ./app (" + manifest + ":4): 5 entries"), std::string::npos)
      << first.err;
  EXPECT_NE(first.err.find("uploaded"), std::string::npos) << first.err;

  Json svc = Get("/v1/services/web");
  std::string digest = svc["spec"].value("rootfs", "");
  ASSERT_EQ(digest.rfind("sha256:", 0), 0u) << svc.dump();
  // Stored as a file named by its hash, whose bytes hash to it, read-only.
  std::string stored = ReadFile(ArtifactFile(digest));
  EXPECT_EQ(Sha256(stored), digest);
  struct stat st {};
  ASSERT_EQ(::stat(ArtifactFile(digest).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/tmp"), 0u);
  // GET gives the same bytes; HEAD the size; the list says who uses it.
  auto [code, body] = HttpGet(port_, "/v1/artifacts/" + digest);
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body, stored);
  httplib::Client cli("127.0.0.1", port_);
  auto head = cli.Head("/v1/artifacts/" + digest);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->get_header_value("Content-Length"), std::to_string(stored.size()));
  Json list = Get("/v1/artifacts");
  ASSERT_EQ(list["items"].size(), 1u) << list.dump();
  EXPECT_EQ(list["items"][0]["digest"], digest);
  EXPECT_EQ(list["items"][0]["size"], stored.size());
  // The Service, and its Allocation (the controller made one; no agent runs it here).
  EXPECT_EQ(list["items"][0]["referencedBy"][0], "service default/web") << list.dump();
  EXPECT_EQ(list["maxBytes"], 512 << 20);
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "PUT"), 1);

  // Again: the server has it, so nothing is sent (a HEAD, no PUT), and nothing changed.
  auto again = Mt({"apply", "-f", manifest});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "service/web unchanged\n");
  EXPECT_NE(again.err.find("already on the server"), std::string::npos) << again.err;
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "PUT"), 1);
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "HEAD"), 3);  // two applies and the test's own

  // New times on every file change nothing: the pack depends on content, modes and links.
  for (const auto& e : fs::recursive_directory_iterator(fs::path(dir_) / "proj/app")) {
    if (!e.is_symlink()) fs::last_write_time(e.path(), fs::file_time_type::clock::now());
  }
  auto touched = Mt({"apply", "-f", manifest});
  EXPECT_EQ(touched.out, "service/web unchanged\n") << touched.err;

  // New content is a new artifact, and a new spec.
  std::ofstream(fs::path(dir_) / "proj/app/main.py") << "print('v2')\n";
  auto changed = Mt({"apply", "-f", manifest});
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_EQ(changed.out, "service/web configured\n");
  EXPECT_NE(changed.err.find("uploaded"), std::string::npos);
  std::string digest2 = Get("/v1/services/web")["spec"].value("rootfs", "");
  EXPECT_NE(digest2, digest);
  EXPECT_EQ(Sha256(ReadFile(ArtifactFile(digest2))), digest2);
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "PUT"), 2);
}

TEST_F(ArtifactsTest, DryRunPacksAndUploadsNothing) {
  StartWith("artifacts-dry", {});
  std::string manifest = WriteApp("dry");
  auto r = Mt({"apply", "--dry-run=server", "-f", manifest});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/dry created (server dry run)\n");
  EXPECT_NE(r.err.find("not uploaded (dry run)"), std::string::npos) << r.err;
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/sha256"), 0u);
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "PUT"), 0);
  // diff packs too: it compares the digest apply would send.
  ASSERT_EQ(Mt({"apply", "-f", manifest}).exit_code, 0);
  auto diff = Mt({"diff", "-f", manifest});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
}

TEST_F(ArtifactsTest, EveryRootfsFormIsPackedAndBadOnesNameTheirLine) {
  StartWith("artifacts-forms", {});
  WriteApp("unused");
  fs::path proj = fs::path(dir_) / "proj";
  // config.rootfs and spec.rootfs, quoted, in one multi-document file.
  WriteFile((proj / "forms.yaml").string(),
            "name: a\nconfig:\n  driver: sandbox\n  base: python312\n  rootfs: \"./app\"\n"
            "  command: /usr/bin/python3\n"
            "---\n"
            "kind: Service\nmetadata:\n  name: b\nspec:\n  driver: sandbox\n  rootfs: 'app'\n"
            "  command: /usr/bin/python3\n");
  auto forms = Mt({"apply", "-f", (proj / "forms.yaml").string()});
  ASSERT_EQ(forms.exit_code, 0) << forms.err;
  std::string a = Get("/v1/services/a")["spec"].value("rootfs", "");
  EXPECT_EQ(a.rfind("sha256:", 0), 0u);
  EXPECT_EQ(Get("/v1/services/b")["spec"].value("rootfs", ""), a);
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "PUT"), 1) << "one directory, packed and sent once";

  std::string bad = (proj / "bad.yaml").string();
  WriteFile(bad,
            "name: c\ndriver: sandbox\nbase: python312\nrootfs: ./app/../../etc\ncommand: /a\n");
  auto dotdot = Mt({"apply", "-f", bad});
  EXPECT_EQ(dotdot.exit_code, 1);
  EXPECT_NE(dotdot.err.find(bad + ":4:1: rootfs: \"./app/../../etc\" must not contain \"..\""),
            std::string::npos)
      << dotdot.err;
  WriteFile(bad,
            "name: c\ndriver: sandbox\nbase: python312\nrootfs: ./nothing-here\ncommand: /a\n");
  auto missing = Mt({"apply", "-f", bad});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find(bad + ":4:1: rootfs: \"./nothing-here\" does not exist"),
            std::string::npos)
      << missing.err;
  WriteFile(bad, "name: c\ndriver: sandbox\nbase: python312\nrootfs: app/main.py\ncommand: /a\n");
  auto file = Mt({"apply", "-f", bad});
  EXPECT_EQ(file.exit_code, 1);
  EXPECT_NE(file.err.find(bad + ":4:1: rootfs: \"app/main.py\" is not a directory"),
            std::string::npos)
      << file.err;
  EXPECT_NE(Mt({"get", "services", "c"}).exit_code, 0);
}

TEST_F(ArtifactsTest, TheServerRefusesWhatDidNotComeThroughMt) {
  StartWith("artifacts-server", {});
  httplib::Client cli("127.0.0.1", port_);
  // A relative rootfs straight to the API: the server cannot see the directory.
  auto rel = cli.Put("/v1/services/x",
                     "name: x\ndriver: sandbox\nbase: python312\nrootfs: ./app\ncommand: /a\n",
                     "application/yaml");
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->status, 400);
  Json e = Json::parse(rel->body);
  ASSERT_EQ(e["details"].size(), 1u) << rel->body;
  EXPECT_EQ(e["details"][0]["field"], "rootfs");
  EXPECT_EQ(e["details"][0]["line"], 4);
  EXPECT_NE(e["details"][0]["message"].get<std::string>().find("mt apply -f"), std::string::npos);
  // A digest the server does not have: refused on a real write, fine in a dry run.
  std::string absent = "sha256:" + std::string(64, 'a');
  std::string yaml =
      "name: x\ndriver: sandbox\nbase: python312\nrootfs: " + absent + "\ncommand: /a\n";
  auto missing = cli.Put("/v1/services/x", yaml, "application/yaml");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  e = Json::parse(missing->body);
  EXPECT_EQ(e["details"][0]["field"], "rootfs");
  EXPECT_EQ(e["details"][0]["line"], 4);
  EXPECT_NE(e["details"][0]["message"].get<std::string>().find("is not on this server"),
            std::string::npos);
  auto dry = cli.Put("/v1/services/x?dryRun=true", yaml, "application/yaml");
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->status, 201) << dry->body;
  // Through POST /v1/apply too, with the file's name.
  std::string f = dir_ + "/absent.yaml";
  WriteFile(f, yaml);
  auto r = Mt({"apply", "-f", f});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(f + ":4:1: rootfs: artifact " + absent + " is not on this server"),
            std::string::npos)
      << r.err;
}

TEST_F(ArtifactsTest, ADigestMismatchIsRefusedAndLeavesNothing) {
  StartWith("artifacts-mismatch", {});
  std::string claimed = Sha256("what was meant");
  auto r = PutArtifact(claimed, "what was sent");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  Json e = Json::parse(r->body);
  EXPECT_EQ(e["reason"], "Invalid");
  EXPECT_NE(e["message"].get<std::string>().find(claimed), std::string::npos) << r->body;
  EXPECT_NE(e["message"].get<std::string>().find(Sha256("what was sent")), std::string::npos);
  EXPECT_EQ(e["details"][0]["field"], "digest");
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/sha256"), 0u);
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/tmp"), 0u);
  auto bad = PutArtifact("sha256:XYZ", "x");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(HttpGet(port_, "/v1/artifacts/" + claimed).first, 404);
  // The right digest is stored (201); the same again is deduplicated (200, not stored twice).
  auto ok = PutArtifact(Sha256("what was sent"), "what was sent");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 201) << ok->body;
  auto dup = PutArtifact(Sha256("what was sent"), "what was sent");
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->status, 200) << dup->body;
  EXPECT_EQ(Json::parse(dup->body)["created"], false);
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/sha256"), 1u);
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/tmp"), 0u);
}

TEST_F(ArtifactsTest, OverTheLimitIs413NamingItAndLeavesNothing) {
  StartWith("artifacts-limit", {"--max-artifact-mb", "1"});
  // The head alone: the server answers at once, without reading a body it will not keep.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string head = "PUT /v1/artifacts/" + Sha256("x") +
                     " HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::string answer;
  ASSERT_TRUE(WaitFor(
      [&] {
        char buf[4096];
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0) return false;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) return true;  // closed after the answer
        answer.append(buf, n);
        return false;
      },
      10s))
      << answer;
  close(fd);
  EXPECT_NE(answer.find("HTTP/1.1 413"), std::string::npos) << answer;
  Json e = Json::parse(answer.substr(answer.find("\r\n\r\n") + 4));
  EXPECT_EQ(e["code"], 413);
  EXPECT_EQ(e["reason"], "RequestEntityTooLarge");
  EXPECT_EQ(e["message"],
            "artifact of 2097152 bytes is over this server's limit of 1 MiB "
            "(mentat-server --max-artifact-mb)");
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/tmp"), 0u);
  EXPECT_EQ(FilesIn(dir_ + "/data/artifacts/sha256"), 0u);
  // Exactly at the limit is fine.
  std::string full = IncompressibleBytes(1 << 20, 7);
  auto at_limit = PutArtifact(Sha256(full), full);
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(at_limit->status, 201) << at_limit->body;
  // mt knows the limit from the server and says so before it sends anything.
  std::string manifest = WriteApp("big");
  std::ofstream(fs::path(dir_) / "proj/app/blob.bin") << IncompressibleBytes(3 << 20, 11);
  double puts = Requests("/v1/artifacts/:digest", "PUT");
  auto r = Mt({"apply", "-f", manifest});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(manifest + ":4:1: rootfs: \"./app\": packed, it is 3.0 MiB, over the "
                                  "server's artifact limit of 1.0 MiB"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "PUT"), puts);
  EXPECT_NE(Mt({"get", "services", "big"}).exit_code, 0);
}

TEST_F(ArtifactsTest, ALargeUploadStreamsToDiskNotMemory) {
  StartWith("artifacts-large", {"--max-artifact-mb", "256"});
  // 160 MiB that do not compress, written to a file and sent from it.
  std::string path = dir_ + "/large.bin";
  std::string digest;
  {
    std::ofstream out(path, std::ios::binary);
    mentat::Sha256 sha;
    for (uint32_t i = 0; i < 160; ++i) {
      std::string mib = IncompressibleBytes(1 << 20, i + 1);
      sha.Update(mib.data(), mib.size());
      out << mib;
    }
    digest = sha.Finish();
  }
  long before = PeakRssKb(server_->pid());
  auto client = ApiClient::Create(Addr());
  ASSERT_TRUE(client);
  auto put = (*client)->PutArtifact(digest, path);
  ASSERT_TRUE(put) << put.error().message();
  EXPECT_EQ((*put)["size"], 160u << 20);
  long after = PeakRssKb(server_->pid());
  EXPECT_LT(after - before, 48 << 10) << "the server's peak memory grew by " << (after - before)
                                      << " KiB for a 160 MiB upload";
  EXPECT_EQ(fs::file_size(ArtifactFile(digest)), 160u << 20);
  // And back, to a file, with the digest checked.
  mentat::Sha256 back;
  uint64_t got = 0;
  ASSERT_TRUE((*client)->GetArtifact(digest, [&](const char* d, size_t n) {
    back.Update(d, n);
    got += n;
    return true;
  }));
  EXPECT_EQ(got, 160u << 20);
  EXPECT_EQ(back.Finish(), digest);
  EXPECT_LT(PeakRssKb(server_->pid()) - before, 48 << 10) << "the download was buffered";
}

TEST_F(ArtifactsTest, TheAgentFetchesOnceForTwoAllocations) {
  StartWith("artifacts-agent", {"--dev"});
  std::string manifest = WriteApp("pair");
  // An exec service: it ignores its rootfs, but the agent fetches it before the start all the
  // same. Two replicas on the one node.
  WriteFile(manifest,
            "name: pair\ndriver: exec\ncount: 2\nrootfs: ./app\ncommand: /bin/sleep\n"
            "args: [\"600\"]\n");
  auto r = Mt({"apply", "-f", manifest});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string digest = Get("/v1/services/pair")["spec"].value("rootfs", "");
  ASSERT_TRUE(WaitFor(
      [&] {
        Json allocs = Get("/v1/allocations");
        int running = 0;
        for (const auto& a : allocs.value("items", Json::array())) {
          if (a.value("status", Json::object()).value("phase", "") == "Running") ++running;
        }
        return running == 2;
      },
      30s))
      << Get("/v1/allocations").dump();
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "GET"), 1);
  // The layer holds the tree under app/, where a sandbox shows it.
  fs::path tree = fs::path(dir_) / "data/agent/artifacts/sha256" / digest.substr(7) / "app";
  EXPECT_EQ(ReadFile((tree / "main.py").string()), "print('hello from pair')\n");
  EXPECT_EQ(fs::read_symlink(tree / "current"), "main.py");
  EXPECT_EQ(fs::status(tree / "run.sh").permissions(), fs::perms(0755));
}

TEST_F(ArtifactsTest, AHostileArtifactFailsTheStartWithAClearMessage) {
  StartWith("artifacts-hostile", {"--dev"});
  // A tar whose second entry climbs out, uploaded under its true digest.
  std::string path = dir_ + "/hostile.tar";
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const char* name : {"ok.txt", "../../escaped.txt"}) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 3);
    archive_write_header(a, e);
    archive_write_data(a, "bad", 3);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  std::string bytes = ReadFile(path);
  std::string digest = Sha256(bytes);
  auto put = PutArtifact(digest, bytes);
  ASSERT_TRUE(put);
  ASSERT_EQ(put->status, 201) << put->body;
  Apply("name: hostile\ndriver: exec\nrootfs: " + digest +
        "\ncommand: /bin/sleep\nargs: [\"600\"]\n");
  std::string message;
  ASSERT_TRUE(WaitForAllocationMessage("cannot fetch rootfs", message)) << message;
  EXPECT_NE(message.find("\"../../escaped.txt\" is absolute or climbs out"), std::string::npos)
      << message;
  EXPECT_TRUE(WaitFor(
      [&] { return Get("/v1/events").dump().find("FailedStart") != std::string::npos; }, 10s))
      << Get("/v1/events").dump();
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    EXPECT_NE(e.path().filename(), "escaped.txt") << e.path();
  }
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "data/agent/artifacts/sha256" / digest.substr(7)));
}

TEST_F(ArtifactsTest, GarbageCollectionSparesWhatIsReferenced) {
  StartWith("artifacts-gc", {"--artifact-grace", "1s", "--compaction-interval", "1"});
  std::string manifest = WriteApp("kept");
  ASSERT_EQ(Mt({"apply", "-f", manifest}).exit_code, 0);
  std::string kept = Get("/v1/services/kept")["spec"].value("rootfs", "");
  std::string loose = Sha256("nobody names me");
  auto put = PutArtifact(loose, "nobody names me");
  ASSERT_TRUE(put && put->status == 201);
  // Watched on disk: a GET or HEAD would count as a use and hold it back.
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(ArtifactFile(loose)); }, 20s))
      << "an unreferenced artifact was never collected";
  EXPECT_TRUE(fs::exists(ArtifactFile(kept)));
  // Logged once the removal is durable, a moment after the file went.
  EXPECT_TRUE(WaitFor([&] {
    return server_->Log().find("artifact " + loose + " deleted") != std::string::npos;
  }, 10s)) << server_->Log();
  // Once its Service (and the Service's Allocations) are gone, it goes too.
  ASSERT_EQ(Mt({"delete", "services", "kept"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(ArtifactFile(kept)); }, 30s));
  EXPECT_EQ(HttpGet(port_, "/v1/artifacts/" + kept).first, 404);
}

// The agent's cache on its own, against the real server: eight callers at once, one fetch.
TEST_F(ArtifactsTest, ConcurrentCallersShareOneFetch) {
  StartWith("artifacts-cache", {});
  WriteApp("cache");
  std::string archive = dir_ + "/app.tar";
  auto packed = PackDirectory(dir_ + "/proj/app", archive);
  ASSERT_TRUE(packed) << packed.error().message();
  auto client = ApiClient::Create(Addr());
  ASSERT_TRUE(client);
  std::shared_ptr<ApiClient> shared = std::move(*client);
  ArtifactCacheOptions opts;
  opts.dir = dir_ + "/cache";
  opts.source = [shared](const std::string& digest, const auto& on_data) {
    return shared->GetArtifact(digest, on_data);
  };
  auto created = ArtifactCache::Create(std::move(opts));
  ASSERT_TRUE(created) << created.error().message();
  ArtifactCache& cache = **created;
  // Not on the server yet: an error, and not remembered as one.
  auto absent = cache.Ensure(packed->digest);
  ASSERT_FALSE(absent);
  EXPECT_NE(absent.error().message().find("not on this server"), std::string::npos)
      << absent.error().message();
  ASSERT_TRUE(shared->PutArtifact(packed->digest, archive));
  std::vector<std::thread> threads;
  std::vector<Result<ArtifactCache::Lease>> got(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { got[i] = cache.Ensure(packed->digest); });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) {
    ASSERT_TRUE(g) << g.error().message();
    EXPECT_EQ(g->path(), dir_ + "/cache/sha256/" + packed->digest.substr(7));
  }
  EXPECT_EQ(cache.fetches(), 2u) << "the failed fetch and one for eight callers";
  EXPECT_EQ(Requests("/v1/artifacts/:digest", "GET"), 2);
  EXPECT_EQ(ReadFile(got[0]->path() + "/app/lib/util.py"), "X = 1\n");
  EXPECT_EQ(FilesIn(dir_ + "/cache/tmp"), 0u);
  // Known on disk: no fetch at all.
  EXPECT_TRUE(cache.Ensure(packed->digest));
  EXPECT_EQ(cache.fetches(), 2u);
}

// Issue 17, item 9: a 33 KB zstd artifact that unpacks to 1 GiB. The in-process agent, with
// its default limits, refuses it at once: the start fails naming the artifact, the limit and
// its flag, in the allocation's status and events, and nothing of it stays on the node.
TEST_F(ArtifactsTest, AZstdBombFailsTheStartNamingTheLimitAndLeavesNothing) {
  StartWith("artifacts-bomb", {"--dev"});
  std::string path = dir_ + "/bomb.tar.zst";
  ASSERT_TRUE(WriteZeroBomb(path, uint64_t{1} << 30));
  std::string bytes = ReadFile(path);
  ASSERT_LT(bytes.size(), 64u << 10);
  std::string digest = Sha256(bytes);
  auto put = PutArtifact(digest, bytes);
  ASSERT_TRUE(put);
  ASSERT_EQ(put->status, 201) << put->body;
  Apply("name: bomb\ndriver: exec\nrootfs: " + digest + "\ncommand: /bin/sleep\nargs: [\"600\"]\n");
  std::string message;
  ASSERT_TRUE(WaitForAllocationMessage("cannot fetch rootfs", message)) << message;
  EXPECT_NE(message.find(digest + ": it unpacks to more than 1024 MiB"), std::string::npos)
      << message;
  EXPECT_NE(message.find("--unpack-max-ratio"), std::string::npos) << message;
  // What an operator reads: the allocation's message and its FailedStart event.
  std::string alloc = Get("/v1/allocations")["items"][0]["metadata"].value("name", "");
  CommandResult described;
  EXPECT_TRUE(WaitFor(
      [&] {
        described = Mt({"describe", "allocation/" + alloc});
        return described.out.find("FailedStart") != std::string::npos;
      },
      10s))
      << described.out << described.err;
  EXPECT_NE(described.out.find("Message:"), std::string::npos) << described.out;
  EXPECT_NE(described.out.find("times its size (a decompression bomb?; --unpack-max-ratio)"),
            std::string::npos)
      << described.out;
  std::string node = dir_ + "/data/agent/artifacts";
  EXPECT_FALSE(fs::exists(node + "/sha256/" + digest.substr(7)));
  EXPECT_EQ(FilesIn(node + "/tmp"), 0u);
  uint64_t on_disk = 0;
  for (const auto& e : fs::recursive_directory_iterator(node)) {
    if (e.is_regular_file()) on_disk += e.file_size();
  }
  EXPECT_LT(on_disk, 1u << 20);
  // The node says so too, in its status (sent with its next heartbeat).
  std::string node_name = Get("/v1/nodes")["items"][0]["metadata"].value("name", "");
  EXPECT_TRUE(WaitFor(
      [&] {
        described = Mt({"describe", "node", node_name});
        return described.out.find("Unpacked Artifacts:") != std::string::npos &&
               described.out.find("refused 1") != std::string::npos;
      },
      20s))
      << described.out << described.err;
}

// A node agent of its own (mentat-agent), with a grace of a second: the tree of a deleted
// service goes, the tree of a running one stays, also after the agent is killed and recovers
// the task from its handle.
TEST_F(ArtifactsTest, UnpackedTreesNoTaskUsesAreCollectedAndUsedOnesNever) {
  StartWith("artifacts-node-gc", {});
  std::vector<std::string> agent_argv = {
      Runfile("cmd/mentat-agent/mentat-agent"), "--server", Addr(), "--node-name", "worker",
      "--data-dir", dir_ + "/agent", "--unpacked-gc-grace", "1s", "--unpacked-gc-interval", "1s"};
  agent_ = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");
  auto deploy = [&](const std::string& name) {
    std::string manifest = WriteApp(name);
    WriteFile(manifest, "name: " + name + "\ndriver: exec\nrootfs: ./app\ncommand: /bin/sleep\n" +
                            "args: [\"600\"]\n");
    auto r = Mt({"apply", "-f", manifest});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string digest = Get("/v1/services/" + name)["spec"].value("rootfs", "");
    EXPECT_TRUE(WaitFor([&] { return RunningPid(name) > 0; }, 30s)) << agent_->Log();
    return digest;
  };
  auto tree = [&](const std::string& digest) {
    return dir_ + "/agent/artifacts/sha256/" + digest.substr(7) + "/app";
  };
  auto collected = [&](const std::string& name, const std::string& digest) {
    EXPECT_EQ(Mt({"delete", "services", name}).exit_code, 0);
    return WaitFor([&] {
      return !fs::exists(tree(digest)) &&
             agent_->Log().find("removed the tree of " + digest) != std::string::npos;
    }, 30s);
  };
  std::string kept = deploy("kept"), gone = deploy("gone");
  ASSERT_TRUE(fs::exists(tree(kept)) && fs::exists(tree(gone)));
  int pid = RunningPid("kept");
  ASSERT_TRUE(collected("gone", gone)) << agent_->Log();
  EXPECT_NE(agent_->Log().find("no task has used it for 1s (--unpacked-gc-grace)"),
            std::string::npos)
      << agent_->Log();
  EXPECT_TRUE(fs::exists(tree(kept)));
  // kill -9 of the agent: the new one recovers "kept" from its handle and keeps its tree.
  agent_->Signal(SIGKILL);
  ASSERT_TRUE(agent_->Wait(5s).has_value());
  agent_ = std::make_unique<Process>(agent_argv, dir_ + "/agent.log");
  ASSERT_TRUE(WaitFor(
      [&] { return agent_->Log().find("without restarting it") != std::string::npos; }, 20s))
      << agent_->Log();
  // Collections run after the restart (they remove this one), and "kept" is untouched.
  std::string later = deploy("later");
  ASSERT_TRUE(collected("later", later)) << agent_->Log();
  EXPECT_TRUE(fs::exists(tree(kept)));
  EXPECT_EQ(RunningPid("kept"), pid);
}

}  // namespace
}  // namespace mentat::e2e

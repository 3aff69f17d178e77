// Real bases built from this host's files into a temp dir, and run: chrooted into the base,
// python3 imports http.server, ssl and json and finds the CA store, /bin/sh runs, busybox httpd
// serves a file on 127.0.0.1. The cache: a second EnsureBase is a hit, a changed recipe or an
// upgraded host package rebuilds, concurrent callers build once, a crash's leftovers go. Errors:
// an unknown name, missing Debian packages. The builder never writes through a link to the host,
// and copies when the bases are on another filesystem (tmpfs). Root: chroot and mounts.
#include "runtimes/sandbox/bases.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "runtimes/sandbox/captured_command.h"
#include "runtimes/sandbox/dpkg_status.h"
#include "runtimes/sandbox/rootfs_builder.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string TempDir(const std::string& name) {
  std::string d = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
                  "/bases-" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Runs argv chrooted into `rootfs` with /proc and an environment of PATH and HOME only, as a
// sandbox would.
CapturedOutput InBase(const std::string& rootfs, const std::vector<std::string>& argv) {
  CaptureOptions o;
  o.chroot_dir = rootfs;
  o.mount_proc = true;
  o.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"};
  auto r = RunCaptured(argv, o);
  EXPECT_TRUE(r) << r.error().ToString();
  return r.value_or(CapturedOutput{});
}

std::string HostOutput(const std::vector<std::string>& argv) {
  auto r = RunCaptured(argv, {});
  return r ? r->out : "";
}

bool HostHas(const std::vector<std::string>& packages) {
  auto v = InstalledVersions(packages);
  return v && v->size() == packages.size();
}

class BasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  std::string dir_;
};

// One build of static and python312 shared by the tests that only look at them.
class BuiltBasesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(TempDir("shared"));
    auto s = EnsureBase(*dir_, "static");
    ASSERT_TRUE(s) << s.error().ToString();
    static_ = new BaseInfo(*s);
    auto p = EnsureBase(*dir_, "python312");
    ASSERT_TRUE(p) << p.error().ToString();
    python_ = new BaseInfo(*p);
  }
  static std::string* dir_;
  static BaseInfo* static_;
  static BaseInfo* python_;
};
std::string* BuiltBasesTest::dir_;
BaseInfo* BuiltBasesTest::static_;
BaseInfo* BuiltBasesTest::python_;

TEST_F(BuiltBasesTest, StaticIsBusyboxWithItsRealVersion) {
  ASSERT_TRUE(static_);
  EXPECT_EQ(static_->name, "static");
  EXPECT_TRUE(std::regex_match(static_->version, std::regex("BusyBox v1\\.[0-9]+\\.[0-9]+")))
      << static_->version;
  EXPECT_EQ(HostOutput({"/bin/busybox"}).rfind(static_->version + " ", 0), 0u);
  EXPECT_EQ(static_->rootfs.rfind(fs::weakly_canonical(*dir_).string() + "/static/build-", 0), 0u)
      << static_->rootfs;
  EXPECT_TRUE(fs::is_regular_file(static_->rootfs + "/bin/busybox"));
  EXPECT_GT(static_->size_bytes, 500 * 1024);
  EXPECT_EQ(static_->recipe_hash, KnownBaseRecipe("static")->hash);
}

TEST_F(BuiltBasesTest, StaticHasHttpdAndAShell) {
  ASSERT_TRUE(static_);
  fs::path httpd = static_->rootfs + "/usr/sbin/httpd";
  ASSERT_TRUE(fs::is_symlink(httpd));
  EXPECT_EQ(fs::read_symlink(httpd), "/bin/busybox");
  auto list = InBase(static_->rootfs, {"/bin/busybox", "--list"});
  EXPECT_NE(("\n" + list.out).find("\nhttpd\n"), std::string::npos);
  auto sh = InBase(static_->rootfs, {"/bin/sh", "-c", "echo ok"});
  EXPECT_EQ(sh.exit_code, 0);
  EXPECT_EQ(sh.out, "ok\n");
  // Mount points and accounts every base has.
  for (const char* d : {"proc", "sys", "dev", "tmp", "app"}) {
    EXPECT_TRUE(fs::is_directory(static_->rootfs + "/" + d)) << d;
  }
  EXPECT_EQ(fs::status(static_->rootfs + "/tmp").permissions(),
            fs::perms::all | fs::perms::sticky_bit);
  EXPECT_EQ(InBase(static_->rootfs, {"/bin/sh", "-c", "id -un"}).out, "root\n");
}

// Picks a port nobody listens on (bind to port 0), for a server that cannot take port 0.
int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

std::string HttpGet(int port, const std::string& path) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    (void)!write(s, req.data(), req.size());
    char buf[4096];
    for (ssize_t n; (n = read(s, buf, sizeof(buf))) > 0;) out.append(buf, n);
  }
  close(s);
  return out;
}

TEST_F(BuiltBasesTest, StaticServesFilesWithBusyboxHttpd) {
  ASSERT_TRUE(static_);
  // The application's files would come from the overlay's upper layers; a copy of the base
  // stands in for the merged tree here, so the shared build stays untouched.
  std::string merged = TempDir("httpd-merged");
  ASSERT_EQ(RunCaptured({"/bin/cp", "-a", static_->rootfs + "/.", merged}, {})->exit_code, 0);
  fs::create_directories(merged + "/app/www");
  std::ofstream(merged + "/app/www/index.html") << "<h1>hello from static</h1>\n";
  int port = FreePort();
  pid_t pid = fork();
  if (pid == 0) {
    if (chroot(merged.c_str()) < 0 || chdir("/") < 0) _exit(126);
    std::string p = "127.0.0.1:" + std::to_string(port);
    char* env[] = {nullptr};
    execle("/usr/sbin/httpd", "httpd", "-f", "-p", p.c_str(), "-h", "/app/www", nullptr, env);
    _exit(127);
  }
  std::string response;
  bool served = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!served && std::chrono::steady_clock::now() < deadline) {
    response = HttpGet(port, "/index.html");
    served = response.find("hello from static") != std::string::npos;
    if (!served) std::this_thread::sleep_for(10ms);  // polling the condition, with a deadline
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(served) << response;
  EXPECT_NE(response.find("200 OK"), std::string::npos) << response;
}

TEST_F(BuiltBasesTest, PythonHasTheHostsRealVersion) {
  ASSERT_TRUE(python_);
  EXPECT_TRUE(std::regex_match(python_->version, std::regex("Python 3\\.11\\.[0-9]+")))
      << python_->version;
  std::string host = HostOutput({"/usr/bin/python3.11", "--version"});
  EXPECT_EQ(python_->version + "\n", host);
}

TEST_F(BuiltBasesTest, PythonRunsInsideTheBaseAlone) {
  ASSERT_TRUE(python_);
  auto py = InBase(python_->rootfs,
                   {"/usr/bin/python3", "-c", "import http.server, ssl, json; print(42)"});
  EXPECT_EQ(py.exit_code, 0) << py.out;
  EXPECT_EQ(py.out, "42\n");
  // The CA store is there and OpenSSL finds it.
  auto cas =
      InBase(python_->rootfs, {"/usr/bin/python3", "-c",
                               "import ssl; print(ssl.create_default_context().cert_store_stats()"
                               "['x509_ca'] > 50)"});
  EXPECT_EQ(cas.out, "True\n");
  // Extension modules brought their libraries: _ssl (libssl), _ctypes (libffi), sqlite3, lzma.
  auto ext = InBase(python_->rootfs, {"/usr/bin/python3", "-c",
                                      "import ctypes, sqlite3, lzma, bz2, zlib, hashlib, "
                                      "threading, subprocess; "
                                      "print(subprocess.run(['/bin/sh', '-c', 'echo sub'], "
                                      "capture_output=True, text=True).stdout.strip())"});
  EXPECT_EQ(ext.out, "sub\n");
  auto sh = InBase(python_->rootfs, {"/bin/sh", "-c", "echo ok"});
  EXPECT_EQ(sh.exit_code, 0);
  EXPECT_EQ(sh.out, "ok\n");
  if (fs::exists("/usr/lib/python3/dist-packages/pip")) {
    auto pip = InBase(python_->rootfs, {"/usr/bin/python3", "-m", "pip", "--version"});
    EXPECT_EQ(pip.exit_code, 0) << pip.out;
    EXPECT_EQ(pip.out.rfind("pip ", 0), 0u) << pip.out;
  }
}

TEST_F(BuiltBasesTest, PythonLeavesOutTestSuitesAndKeepsTheHostLayout) {
  ASSERT_TRUE(python_);
  const std::string& r = python_->rootfs;
  EXPECT_TRUE(fs::is_regular_file(r + "/usr/lib/python3.11/json/__init__.py"));
  EXPECT_FALSE(fs::exists(r + "/usr/lib/python3.11/test"));
  EXPECT_FALSE(fs::exists(r + "/usr/lib/python3.11/unittest/test"));
  EXPECT_FALSE(fs::exists(r + "/usr/lib/python3.11/tkinter"));
  EXPECT_FALSE(fs::exists(r + "/usr/lib/python3.11/idlelib"));
  // Merged /usr: /lib and /bin are the same links as on the host.
  for (const char* top : {"/lib", "/lib64", "/bin"}) {
    EXPECT_EQ(fs::is_symlink(top), fs::is_symlink(r + top)) << top;
    if (fs::is_symlink(top)) {
      EXPECT_EQ(fs::read_symlink(top), fs::read_symlink(r + top)) << top;
    }
  }
  EXPECT_EQ(fs::read_symlink(r + "/usr/bin/python3"), "python3.11");
  // Nothing of the host's that is not in the recipe (or needed by it).
  EXPECT_FALSE(fs::exists(r + "/usr/bin/perl"));
  EXPECT_FALSE(fs::exists(r + "/etc/shadow"));
  EXPECT_FALSE(fs::exists(r + "/etc/ssl/private"));
  // On the host's filesystem: hard links, not copies; on another (a data dir on its own disk)
  // they cannot be, and are copies.
  struct stat host_st, base_st;
  ASSERT_EQ(stat("/usr/bin/python3.11", &host_st), 0);
  ASSERT_EQ(stat((r + "/usr/bin/python3.11").c_str(), &base_st), 0);
  const bool same_fs = host_st.st_dev == base_st.st_dev;
  if (same_fs) EXPECT_EQ(host_st.st_ino, base_st.st_ino);
  auto j = nlohmann::json::parse(Slurp(fs::path(r).parent_path() / "base.json"));
  EXPECT_EQ(j["name"], "python312");
  EXPECT_EQ(j["version"], python_->version);
  EXPECT_EQ(j["built_at"], python_->built_at);
  EXPECT_EQ(j["recipe_hash"], python_->recipe_hash);
  EXPECT_EQ(j["size_bytes"], python_->size_bytes);
  EXPECT_EQ(j["size"], python_->size_bytes);
  EXPECT_TRUE(j["host_packages"].contains("python3.11"));
  EXPECT_GT(j[same_fs ? "files_linked" : "files_copied"].get<int>(), 1000);
}

TEST_F(BuiltBasesTest, ASecondEnsureIsACacheHit) {
  ASSERT_TRUE(python_);
  auto start = std::chrono::steady_clock::now();
  auto again = EnsureBase(*dir_, "python312");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->built_at, python_->built_at);
  EXPECT_EQ(again->rootfs, python_->rootfs);
  EXPECT_EQ(again->version, python_->version);
  EXPECT_LT(took, 1s) << "a cache hit rebuilt or took long";
}

TEST_F(BuiltBasesTest, ListBasesShowsTheBuiltOnesWithVersions) {
  ASSERT_TRUE(python_ && static_);
  auto list = ListBases(*dir_);
  ASSERT_TRUE(list) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "python312");
  EXPECT_EQ((*list)[0].version, python_->version);
  EXPECT_EQ((*list)[0].rootfs, python_->rootfs);
  EXPECT_EQ((*list)[1].name, "static");
  EXPECT_EQ((*list)[1].size_bytes, static_->size_bytes);
}

TEST_F(BasesTest, ListOfNothing) {
  auto empty = ListBases(dir_);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto missing = ListBases(dir_ + "/does-not-exist");
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->empty());
}

TEST_F(BasesTest, AChangedRecipeRebuildsAndKeepsOnlyThePreviousBuild) {
  auto recipe = KnownBaseRecipe("static");
  ASSERT_TRUE(recipe);
  auto first = EnsureBaseFromRecipe(dir_, *recipe);
  ASSERT_TRUE(first) << first.error().ToString();

  auto changed = ParseBaseRecipe("static", recipe->text + "symlinks: {/bin/hello: busybox}\n");
  ASSERT_TRUE(changed) << changed.error().ToString();
  ASSERT_NE(changed->hash, recipe->hash);
  auto second = EnsureBaseFromRecipe(dir_, *changed);
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_NE(second->rootfs, first->rootfs);
  EXPECT_EQ(second->recipe_hash, changed->hash);
  EXPECT_TRUE(fs::is_symlink(second->rootfs + "/bin/hello"));
  EXPECT_FALSE(fs::exists(first->rootfs + "/bin/hello"));
  // The build it replaced stays: a sandbox started on it keeps a whole lowerdir.
  EXPECT_TRUE(fs::exists(first->rootfs + "/bin/busybox"));
  EXPECT_EQ(ListBases(dir_)->at(0).rootfs, second->rootfs);

  // Back to the compiled-in recipe: a third build; the first is gone now.
  auto third = EnsureBase(dir_, "static");
  ASSERT_TRUE(third) << third.error().ToString();
  EXPECT_NE(third->rootfs, second->rootfs);
  EXPECT_FALSE(fs::exists(first->rootfs));
  EXPECT_TRUE(fs::exists(second->rootfs));
  int builds = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/static")) {
    builds += e.path().filename().string().rfind("build-", 0) == 0;
  }
  EXPECT_EQ(builds, 2);
}

TEST_F(BasesTest, ATamperedRecordIsRebuilt) {
  auto first = EnsureBase(dir_, "static");
  ASSERT_TRUE(first);
  std::string record = fs::path(first->rootfs).parent_path() / "base.json";
  auto j = nlohmann::json::parse(Slurp(record));
  j["recipe_hash"] = "0000";
  std::ofstream(record) << j.dump();
  auto second = EnsureBase(dir_, "static");
  ASSERT_TRUE(second);
  EXPECT_NE(second->rootfs, first->rootfs);
  EXPECT_EQ(second->recipe_hash, KnownBaseRecipe("static")->hash);
}

// A copy of dpkg's status with busybox-static at another version, or without it.
std::string FakeDpkgStatus(const std::string& dir, const std::string& busybox_version) {
  std::string in = Slurp(kDpkgStatusPath), out;
  std::istringstream stanzas(in);
  std::string line, stanza;
  auto flush = [&] {
    if (stanza.find("Package: busybox-static\n") == 0) {
      if (busybox_version.empty()) {
        stanza.clear();
      } else {
        stanza = std::regex_replace(stanza, std::regex("\nVersion: [^\n]*"),
                                    "\nVersion: " + busybox_version);
      }
    }
    out += stanza;
    stanza.clear();
  };
  while (std::getline(stanzas, line)) {
    stanza += line + "\n";
    if (line.empty()) flush();
  }
  flush();
  std::string path = dir + "/status-" + (busybox_version.empty() ? "none" : busybox_version);
  std::ofstream(path) << out;
  return path;
}

TEST_F(BasesTest, AnUpgradedHostPackageRebuilds) {
  auto recipe = KnownBaseRecipe("static");
  ASSERT_TRUE(recipe);
  auto first = EnsureBaseFromRecipe(dir_, *recipe);
  ASSERT_TRUE(first);
  EnsureBaseFromRecipe(dir_, *recipe);
  EnsureBaseOptions upgraded;
  upgraded.dpkg_status = FakeDpkgStatus(dir_, "1:9.99.0-1");
  auto second = EnsureBaseFromRecipe(dir_, *recipe, upgraded);
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_NE(second->rootfs, first->rootfs);
  auto j = nlohmann::json::parse(Slurp(fs::path(second->rootfs).parent_path() / "base.json"));
  EXPECT_EQ(j["host_packages"]["busybox-static"], "1:9.99.0-1");
  // Removing the package does not throw away a base that has its own copy.
  EnsureBaseOptions removed;
  removed.dpkg_status = FakeDpkgStatus(dir_, "");
  auto third = EnsureBaseFromRecipe(dir_, *recipe, removed);
  ASSERT_TRUE(third) << third.error().ToString();
  EXPECT_EQ(third->rootfs, second->rootfs);
}

TEST_F(BasesTest, MissingDebianPackagesAreNamedWithTheAptGetCommand) {
  auto recipe = KnownBaseRecipe("static");
  ASSERT_TRUE(recipe);
  EnsureBaseOptions o;
  o.dpkg_status = FakeDpkgStatus(dir_, "");
  auto r = EnsureBaseFromRecipe(dir_ + "/bases", *recipe, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.error().message(),
            "base static needs Debian packages this host does not have: busybox-static; install "
            "them with: apt-get install -y busybox-static");
  auto list = ListBases(dir_ + "/bases");
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());
}

TEST_F(BasesTest, AMissingHostFileNamesItAndThePackages) {
  auto recipe =
      ParseBaseRecipe("mini",
                      "packages: [busybox-static]\n"
                      "files: [/bin/busybox, /nonexistent/tool]\n"
                      "version: {command: [/bin/busybox], pattern: 'BusyBox v[0-9.]+'}\n");
  ASSERT_TRUE(recipe) << recipe.error().ToString();
  auto r = EnsureBaseFromRecipe(dir_, *recipe);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.error().message(),
            "base mini needs /nonexistent/tool, which this host does not have (Debian packages: "
            "busybox-static; apt-get install -y busybox-static)");
  // The failed build left nothing behind.
  for (const auto& e : fs::directory_iterator(dir_ + "/mini")) {
    EXPECT_EQ(e.path().filename(), ".lock");
  }
}

TEST_F(BasesTest, AnUnknownBaseIsNotFoundWithADidYouMean) {
  auto r = EnsureBase(dir_, "statik");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find("did you mean \"static\"?"), std::string::npos);
  EXPECT_NE(r.error().message().find("known bases: java21, node22, python312, static"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/statik"));
}

TEST_F(BasesTest, ConcurrentCallersBuildOnce) {
  std::vector<Result<BaseInfo>> results(4, InvalidArgument("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = EnsureBase(dir_, "static"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->rootfs, results[0]->rootfs);
    EXPECT_EQ(r->built_at, results[0]->built_at);
  }
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/static")) {
    std::string n = e.path().filename();
    EXPECT_TRUE(n == ".lock" || n == "current" || n.rfind("build-", 0) == 0) << n;
    entries += n.rfind("build-", 0) == 0;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(BasesTest, ACrashedBuildsLeftoversAreRemoved) {
  // What a build killed half way leaves: a temp dir and no `current`.
  fs::create_directories(dir_ + "/static/.tmp-crashed/rootfs/usr/bin");
  std::ofstream(dir_ + "/static/.tmp-crashed/rootfs/usr/bin/half") << "x";
  EXPECT_TRUE(ListBases(dir_)->empty());
  auto r = EnsureBase(dir_, "static");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(fs::exists(dir_ + "/static/.tmp-crashed"));
  EXPECT_EQ(ListBases(dir_)->size(), 1u);
}

TEST_F(BasesTest, NodeAndJavaBuildWhenTheHostHasThemAndSayWhatIsMissingOtherwise) {
  struct Case {
    const char* name;
    std::vector<std::string> run;
    const char* expect;
  };
  const Case cases[] = {
      {"node22", {"/usr/bin/node", "-e", "console.log(require('https') && 40 + 2)"}, "42\n"},
      {"java21", {"/usr/bin/java", "-XshowSettings:properties", "-version"}, "java.home"},
  };
  for (const auto& c : cases) {
    auto recipe = KnownBaseRecipe(c.name);
    ASSERT_TRUE(recipe);
    auto built = EnsureBase(dir_, c.name);
    if (!HostHas(recipe->packages)) {
      ASSERT_FALSE(built) << c.name;
      EXPECT_EQ(built.error().code(), Code::kFailedPrecondition);
      EXPECT_NE(built.error().message().find("apt-get install -y"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(built) << c.name << ": " << built.error().ToString();
    auto out = InBase(built->rootfs, c.run);
    EXPECT_EQ(out.exit_code, 0) << c.name << ": " << out.out;
    EXPECT_NE(out.out.find(c.expect), std::string::npos) << c.name << ": " << out.out;
    EXPECT_EQ(InBase(built->rootfs, {"/bin/sh", "-c", "echo ok"}).out, "ok\n") << c.name;
  }
}

TEST(RootfsBuilderTest, NeverWritesThroughALinkToTheHost) {
  std::string dir = TempDir("escape");
  std::string host_side = dir + "/host-side";
  fs::create_directories(host_side);
  std::string root = dir + "/rootfs";
  fs::create_directories(root);
  auto b = RootfsBuilder::Create(root);
  ASSERT_TRUE(b);
  // An absolute link in the rootfs names a host directory that exists.
  ASSERT_TRUE((*b)->AddSymlink("/evil", host_side));
  auto w = (*b)->WriteFile("/evil/planted", "x", 0644);
  EXPECT_FALSE(fs::exists(host_side + "/planted"));
  if (w) {
    EXPECT_TRUE(fs::exists(root + host_side + "/planted"));  // inside the rootfs, where it belongs
  }
  (*b)->AddDirectory("/evil/sub", 0755);
  EXPECT_FALSE(fs::exists(host_side + "/sub"));
  (*b)->AddSymlink("/evil/link", "x");
  EXPECT_FALSE(fs::exists(host_side + "/link"));
}

TEST(RootfsBuilderTest, CopiesWhenTheBasesAreOnAnotherFilesystem) {
  // A private mount namespace for this process, with a tmpfs: linking across is EXDEV.
  ASSERT_EQ(unshare(CLONE_NEWNS), 0) << strerror(errno);
  ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  std::string dir = TempDir("tmpfs");
  ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64m"), 0) << strerror(errno);
  auto r = EnsureBase(dir, "static");
  ASSERT_TRUE(r) << r.error().ToString();
  auto j = nlohmann::json::parse(Slurp(fs::path(r->rootfs).parent_path() / "base.json"));
  EXPECT_EQ(j["files_linked"], 0);
  EXPECT_GE(j["files_copied"].get<int>(), 1);
  struct stat st;
  ASSERT_EQ(stat((r->rootfs + "/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(InBase(r->rootfs, {"/bin/sh", "-c", "echo copied"}).out, "copied\n");
  umount2(dir.c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace mentat

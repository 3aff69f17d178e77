#include "e2e/harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <openssl/evp.h>

namespace mentat::e2e {
namespace fs = std::filesystem;

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  if (srcdir && ws) {
    std::string p = std::string(srcdir) + "/" + ws + "/" + path;
    if (fs::exists(p)) return p;
  }
  return path;
}

std::string TempDir(const std::string& prefix) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return "";
  return buf.data();
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

bool Has(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline,
             std::chrono::milliseconds every) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(every);  // poll interval of a condition wait
  }
}

namespace {

// in_fd -1: stdin is /dev/null.
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
            int out_fd, int err_fd, int in_fd = -1) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  for (const auto& e : extra_env) env_s.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY), 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  return pid;
}

std::string Slurp(int fd) {
  std::string out;
  lseek(fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  return RunCommandWithInput(argv, std::nullopt, env);
}

CommandResult RunCommandWithInput(const std::vector<std::string>& argv,
                                  const std::optional<std::string>& input,
                                  const std::vector<std::string>& env) {
  FILE* out = tmpfile();
  FILE* err = tmpfile();
  FILE* in = nullptr;
  if (input) {
    in = tmpfile();
    fwrite(input->data(), 1, input->size(), in);
    fflush(in);
    rewind(in);
  }
  CommandResult r;
  pid_t pid = Spawn(argv, env, fileno(out), fileno(err), in ? fileno(in) : -1);
  if (in) fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(fileno(out));
  r.err = Slurp(fileno(err));
  fclose(out);
  fclose(err);
  return r;
}

Process::Process(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
  int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_ = Spawn(argv, {}, fd, fd);
  close(fd);
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Process::Running() {
  if (reaped_) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

void Process::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return 0;
  int status = 0;
  bool done = WaitFor([&] {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    return r == pid_;
  }, timeout, std::chrono::milliseconds(10));
  if (!done) return std::nullopt;
  reaped_ = true;
  return status;
}

std::string Process::Log() const { return ReadFile(log_path_); }

std::vector<std::string> ServerArgv(int port, const std::string& data_dir,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {Runfile("cmd/mentat-server/mentat-server"), "--listen",
                                   "127.0.0.1:" + std::to_string(port), "--data-dir", data_dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  // Tests talk to the API without tokens unless they test authentication themselves.
  if (std::find(extra.begin(), extra.end(), "--auth") == extra.end()) {
    argv.insert(argv.end(), {"--auth", "none"});
  }
  // Tests run their workloads as root with whatever the feature under test needs, as a
  // cluster's permissive namespace would; the policy tests ask for the restricted default.
  if (std::find(extra.begin(), extra.end(), "--default-policy") == extra.end()) {
    argv.insert(argv.end(), {"--default-policy", "permissive"});
  }
  return argv;
}

std::unique_ptr<Process> StartServer(int port, const std::string& data_dir,
                                     const std::string& log_path,
                                     const std::vector<std::string>& extra) {
  auto p = std::make_unique<Process>(ServerArgv(port, data_dir, extra), log_path);
  if (!WaitFor([&] { return HttpGet(port, "/healthz").first == 200; },
               std::chrono::seconds(15))) {
    return nullptr;
  }
  return p;
}

std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(1, 0);
  cli.set_tcp_nodelay(true);
  cli.set_default_headers({{"Accept-Encoding", "identity"}});
  cli.set_read_timeout(5, 0);
  auto res = cli.Get(path);
  if (!res) return {0, ""};
  return {res->status, res->body};
}

WatchOpening StreamWatch(int port, const std::string& path,
                         const std::function<bool(const nlohmann::json&)>& on_event,
                         std::chrono::milliseconds silence) {
  WatchOpening w;
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(1, 0);
  cli.set_read_timeout(silence);
  cli.set_default_headers({{"Accept-Encoding", "identity"}});
  std::string buf;
  cli.Get(
      path,
      [&](const httplib::Response& res) {
        w.status = res.status;
        return true;
      },
      [&](const char* data, size_t n) {
        buf.append(data, n);
        if (w.status != 200) return true;  // a refusal: read its whole body
        for (size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
          auto ev = nlohmann::json::parse(buf.substr(0, nl), nullptr, false);
          buf.erase(0, nl + 1);
          if (!ev.is_object() || !on_event(ev)) return false;
        }
        return true;
      });
  if (w.status != 200) w.body = buf;
  return w;
}

WatchStart OpenWatch(int port, const std::string& path, size_t want) {
  WatchStart w;
  WatchOpening opening = StreamWatch(port, path, [&](const nlohmann::json& ev) {
    if (ev.value("type", "") != "BOOKMARK") w.events.push_back(ev);
    return w.events.size() < want;  // enough: end the stream
  });
  w.status = opening.status;
  w.body = std::move(opening.body);
  return w;
}

void PrintTo(const WatchedEvent& e, std::ostream* os) { *os << e.rv << " " << e.type << " " << e.name; }

int64_t RvOf(const nlohmann::json& object) {
  return std::stoll(object["metadata"].value("resourceVersion", std::string("0")));
}

std::string FirstDifference(const std::vector<WatchedEvent>& got,
                            const std::vector<WatchedEvent>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "";
  std::ostringstream out;
  out << "they part at event " << i << " (" << got.size() << " vs " << want.size() << " events)";
  for (const auto* side : {&got, &want}) {
    out << (side == &got ? "\n  got:" : "\n  reference:");
    for (size_t j = i; j < side->size() && j < i + 5; ++j) {
      out << "  ";
      PrintTo((*side)[j], &out);
      out << ";";
    }
  }
  return out.str();
}

bool ProcessAlive(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return false;
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

std::string MakeTestCertificates(const std::string& dir) {
  WriteFile(dir + "/ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const std::vector<std::vector<std::string>> steps = {
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/ca.key", "-out",
       dir + "/ca.crt", "-days", "2", "-subj", "/CN=mentat-test-ca"},
      {"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", dir + "/server.key", "-out", dir + "/server.csr", "-subj",
       "/CN=127.0.0.1"},
      {"/usr/bin/openssl", "x509", "-req", "-in", dir + "/server.csr", "-CA", dir + "/ca.crt",
       "-CAkey", dir + "/ca.key", "-CAcreateserial", "-out", dir + "/server.crt", "-days", "2",
       "-extfile", dir + "/ext.cnf"},
  };
  for (const auto& argv : steps) {
    auto r = RunCommand(argv);
    if (r.exit_code != 0) return r.err.empty() ? "openssl failed" : r.err;
  }
  return "";
}

namespace {

// A "Name:   N kB" field of /proc/PID/status, in KiB.
long StatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + field.size());
  }
  return -1;
}

}  // namespace

long RssKb(pid_t pid) { return StatusKb(pid, "VmRSS:"); }
long PeakRssKb(pid_t pid) { return StatusKb(pid, "VmHWM:"); }

double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis start
  // with the state (field 3), so utime and stime (14 and 15) are the 12th and 13th of those.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  long long utime = -1, stime = -1;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::atoll(field.c_str());
    if (i == 15) stime = std::atoll(field.c_str());
  }
  if (utime < 0 || stime < 0) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n);
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace mentat::e2e

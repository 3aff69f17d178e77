#include "runtimes/sandbox/elf_libraries.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "runtimes/sandbox/captured_command.h"

namespace mentat {
namespace {

bool ReadAt(int fd, void* buf, size_t len, off_t off) {
  ssize_t n = pread(fd, buf, len, off);
  return n == static_cast<ssize_t>(len);
}

// Closes a file descriptor when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

ElfInfo InspectElf(const std::string& path) {
  ElfInfo info;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  FdCloser closer{fd};
  if (fd < 0) return info;
  Elf64_Ehdr eh;
  if (!ReadAt(fd, &eh, sizeof(eh), 0) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    return info;
  }
  // Bases are built for the host, which is 64-bit: other classes are not resolved.
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)) return info;
  info.is_elf = true;
  for (int i = 0; i < eh.e_phnum && i < 4096; ++i) {
    Elf64_Phdr ph;
    if (!ReadAt(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph))) break;
    if (ph.p_type == PT_INTERP && ph.p_filesz > 1 && ph.p_filesz < 4096) {
      std::string interp(ph.p_filesz, '\0');
      if (ReadAt(fd, interp.data(), interp.size(), ph.p_offset)) {
        info.interpreter = interp.c_str();  // up to the NUL
      }
    } else if (ph.p_type == PT_DYNAMIC && ph.p_filesz < (1u << 20)) {
      // A static-pie binary has a dynamic section too, but no DT_NEEDED: nothing to load, and
      // `ld.so --list` would crash on it.
      for (Elf64_Off off = 0; off + sizeof(Elf64_Dyn) <= ph.p_filesz; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn d;
        if (!ReadAt(fd, &d, sizeof(d), ph.p_offset + off) || d.d_tag == DT_NULL) break;
        if (d.d_tag == DT_NEEDED) {
          info.needs_libraries = true;
          break;
        }
      }
    }
  }
  return info;
}

std::string HostDynamicLoader() {
  for (const char* probe : {"/bin/sh", "/usr/bin/env"}) {
    ElfInfo e = InspectElf(probe);
    if (!e.interpreter.empty()) return e.interpreter;
  }
  return "/lib64/ld-linux-x86-64.so.2";
}

Result<LibraryClosure> ResolveLibraries(const std::string& path, const std::string& loader,
                                        const std::vector<std::string>& extra_library_dirs) {
  std::vector<std::string> argv = {loader};
  if (!extra_library_dirs.empty()) {
    std::string dirs;
    for (const auto& d : extra_library_dirs) dirs += (dirs.empty() ? "" : ":") + d;
    argv.insert(argv.end(), {"--library-path", dirs});
  }
  argv.insert(argv.end(), {"--list", path});
  // No LD_LIBRARY_PATH or LD_PRELOAD from the caller's environment: the sandbox has none.
  CaptureOptions o;
  o.env = {};
  MT_ASSIGN_OR_RETURN(CapturedOutput listed, RunCaptured(argv, o));

  // Lines: "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "\tlinux-vdso.so.1
  // (0x...)", "\t/lib64/ld-linux-x86-64.so.2 (0x...)", "\tlibfoo.so.1 => not found".
  LibraryClosure closure;
  closure.interpreter = loader;
  std::vector<std::string> missing;
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    line = line.substr(start);
    size_t arrow = line.find(" => ");
    if (arrow != std::string::npos) {
      std::string name = line.substr(0, arrow);
      std::string rest = line.substr(arrow + 4);
      if (rest.rfind("not found", 0) == 0) {
        missing.push_back(name);
        continue;
      }
      std::string lib = rest.substr(0, rest.find(" ("));
      if (!lib.empty() && lib[0] == '/') closure.libraries.push_back(lib);
    } else if (line[0] == '/') {
      closure.interpreter = line.substr(0, line.find(" ("));
    }
    // Anything else is the vDSO, which the kernel provides.
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    return FailedPrecondition(path + " needs shared libraries the host does not have: " + names);
  }
  if (listed.exit_code != 0) {
    std::string why = listed.out.substr(0, listed.out.find('\n'));
    return FailedPrecondition("the dynamic loader cannot resolve " + path + ": " + why);
  }
  return closure;
}

}  // namespace mentat

// What an ELF file needs from the dynamic loader at run time. InspectElf reads only the headers
// (is it ELF, which interpreter, does it list DT_NEEDED libraries); the libraries themselves are
// resolved by the loader that will load them (`ld.so --list`), so its search rules (ld.so.cache,
// RUNPATH, $ORIGIN, hwcaps) are the real ones, not a copy of them.
#pragma once

#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

struct ElfInfo {
  bool is_elf = false;
  std::string interpreter;       // PT_INTERP ("/lib64/ld-linux-x86-64.so.2"), "" for libraries
  bool needs_libraries = false;  // has DT_NEEDED entries
};

// Reads the ELF header and program headers of `path`. Not ELF (or unreadable): is_elf false.
ElfInfo InspectElf(const std::string& path);

// The dynamic loader the host's binaries use, from PT_INTERP of /bin/sh (or the x86-64 default).
std::string HostDynamicLoader();

struct LibraryClosure {
  std::vector<std::string> libraries;  // absolute host paths, as the loader found them
  std::string interpreter;             // the loader itself
};

// Every shared library `path` loads, transitively, as `loader --list` reports them. For a
// library whose dependencies are found only next to the program that loads it (a JVM's libjava
// needs libjvm), `extra_library_dirs` go on the loader's search path.
// kFailedPrecondition naming what the loader could not find.
Result<LibraryClosure> ResolveLibraries(const std::string& path, const std::string& loader,
                                        const std::vector<std::string>& extra_library_dirs = {});

}  // namespace mentat

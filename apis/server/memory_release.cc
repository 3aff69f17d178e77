#include "apis/server/memory_release.h"

#include <malloc.h>

// Weak, so that binaries without TCMalloc (the tests) link, and take glibc's path.
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace mentat {

void ReleaseFreeMemory() {
  if (MallocExtension_ReleaseFreeMemory) return MallocExtension_ReleaseFreeMemory();
  malloc_trim(0);
}

}  // namespace mentat

// Gives freed heap memory back to the operating system. After a burst of large request bodies
// the allocator keeps the pages it used for them, and the server's resident memory would stay
// at its peak for good.
#pragma once

namespace mentat {

// TCMalloc's ReleaseFreeMemory when the binary is linked with it (mentat-server is), else
// glibc's malloc_trim. It takes milliseconds: call it after large bodies, not per request.
void ReleaseFreeMemory();

}  // namespace mentat

// The network step of a confined child in a fresh network namespace (hull's network "none"):
// the namespace starts with lo down and nothing else; bringing lo up gives the workload a
// loopback and no route anywhere.
#pragma once

namespace mentat {

// In the child, inside its new network namespace: sets lo up. Returns 0 or errno.
// Async-signal-safe (socket, ioctl, close).
int BringUpLoopbackInChild() noexcept;

}  // namespace mentat

// What the manager does with a key whose reconcile failed, decided by the error's code
// (apis/error.h; STYLE.md, "Errors are values"). Errors that another try cannot fix (invalid
// input, a permission refused, a precondition unmet) are not retried: the key waits for the
// next change of its objects. Errors of the moment (unavailable, a conflicting write, an I/O
// failure) are retried with the work queue's per-key exponential backoff.
#pragma once

#include "apis/error.h"

namespace mentat {

enum class RetryPolicy {
  kRetryWithBackoff,  // requeue after the key's next backoff delay
  kDoNotRetry,        // forget the key until an event brings it back
};

RetryPolicy RetryPolicyFor(Code code);

}  // namespace mentat

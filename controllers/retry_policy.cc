#include "controllers/retry_policy.h"

namespace mentat {

RetryPolicy RetryPolicyFor(Code code) {
  switch (code) {
    case Code::kInvalidArgument:     // the input is wrong: the same input fails the same way
    case Code::kFailedPrecondition:  // waits for the world to change, which an event reports
    case Code::kForbidden:           // a permission refused stays refused
    case Code::kUnauthenticated:
    case Code::kTooLarge:
      return RetryPolicy::kDoNotRetry;
    case Code::kOk:
    case Code::kNotFound:       // a read raced a delete: the next read sees the world as it is
    case Code::kAlreadyExists:  // likewise, a create raced another
    case Code::kConflict:       // a stale resourceVersion: re-read and write again
    case Code::kGone:
    case Code::kUnavailable:  // the store or a peer is busy or away: later
    case Code::kInternal:     // an I/O failure may pass
      return RetryPolicy::kRetryWithBackoff;
  }
  return RetryPolicy::kRetryWithBackoff;
}

}  // namespace mentat

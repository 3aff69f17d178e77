// Events (kind Event): short-lived records of what happened to an object, for `mt describe`
// and for operators watching `mt get events -w`. Repeats of the same event about the same
// object (same reason and message) are one Event whose count and lastTimestamp grow, as in
// Kubernetes; the server deletes Events older than their time to live (--event-ttl).
#pragma once

#include <string>

#include "apis/object.h"

namespace mentat {

inline constexpr const char* kEventNormal = "Normal";
inline constexpr const char* kEventWarning = "Warning";

// The Event's name: the involved object's name and a hash of (kind, reason, message), so a
// repeat lands on the same Event. A DNS label, at most 63 characters.
std::string EventName(const Json& involved, const std::string& reason, const std::string& message);

// A new Event (count 1) about `involved`, from `source` (e.g. "service-controller",
// "agent/node-a").
Json MakeEvent(const Json& involved, const std::string& type, const std::string& reason,
               const std::string& message, const std::string& source);

// `existing` seen once more: count + 1, lastTimestamp now.
Json RepeatEvent(Json existing);

}  // namespace mentat

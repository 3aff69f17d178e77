// The head of an HTTP/1.1 request as the server's input gate reads it, before evhttp does:
// the request line, the headers, and how the body is framed. Pure parsing, no I/O, so that a
// request can be judged (authenticated, its size checked) before a byte of its body is read.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

struct RequestHead {
  std::string method;  // as sent; one of the methods the server serves
  std::string line;    // the request line, without its CRLF
  std::string path;    // percent-decoded, without the query
  std::multimap<std::string, std::string> params;  // the decoded query
  std::map<std::string, std::string> headers;      // names lower-cased
  uint64_t content_length = 0;
  bool chunked = false;  // Transfer-Encoding: the length is not known from the head
  // The header lines but Content-Length, Transfer-Encoding, Expect and Connection, each with
  // its CRLF; and the Connection line, if any.
  std::string other_lines;
  std::string connection_line;

  // The same head announcing no body (Content-Length: 0): what evhttp gets when the gate keeps
  // the body from it. Without the Connection line when `keep_open`, so that evhttp does not
  // close the connection under a client still sending a refused body (a reset would lose the
  // answer); the gate closes it, or reads on, once that body is dealt with.
  std::string Bodiless(bool keep_open) const {
    return line + "\r\n" + other_lines + (keep_open ? "" : connection_line) +
           "Content-Length: 0\r\n\r\n";
  }
};

// Parses `head`, which ends with the blank line (CRLF CRLF). A malformed request line or header
// line, an unknown method, a Content-Length that is no byte count (or two that differ), or both
// a Content-Length and a Transfer-Encoding are InvalidArgument errors (a 400 to answer).
Result<RequestHead> ParseHead(const std::string& head);

// The path (percent-decoded) and query of a request target, as evhttp decodes them. False when
// the target or its query is malformed.
bool DecodeTarget(const std::string& target, std::string* path,
                  std::multimap<std::string, std::string>* params);

// The segments of a path: "/v1/services/web" is {"v1", "services", "web"}.
std::vector<std::string> PathSegments(const std::string& path);

// The reason phrase of an HTTP status: "Not Found" for 404.
const char* ReasonPhrase(int status);

}  // namespace mentat

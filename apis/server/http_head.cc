#include "apis/server/http_head.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

namespace mentat {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// A piece of the client's input, fit to quote in an error message (which is JSON, so valid
// UTF-8): at most `max` bytes, anything but printable ASCII shown as '?'.
std::string Quote(const std::string& s, size_t max) {
  std::string out = s.substr(0, max);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return "\"" + out + "\"";
}

bool KnownMethod(const std::string& m) {
  static const std::set<std::string> kMethods = {"GET",    "POST",    "HEAD", "PUT",
                                                 "DELETE", "OPTIONS", "PATCH"};
  return kMethods.count(m) > 0;
}

// The request line: METHOD TARGET HTTP/1.x.
Status ParseRequestLine(const std::string& line, RequestHead* out) {
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1 || line.compare(sp2 + 1, 7, "HTTP/1.") != 0) {
    return InvalidArgument("malformed request line: " + Quote(line, 80));
  }
  out->method = line.substr(0, sp1);
  if (!KnownMethod(out->method)) {
    return InvalidArgument("method " + Quote(out->method, 20) + " is not one this server serves");
  }
  if (!DecodeTarget(line.substr(sp1 + 1, sp2 - sp1 - 1), &out->path, &out->params)) {
    return InvalidArgument("malformed query string: every parameter needs name=value");
  }
  out->line = line;
  return {};
}

// How the body is framed, from the headers already parsed.
Status ParseFraming(const std::string& length, int lengths_seen, RequestHead* out) {
  if (out->chunked && lengths_seen > 0) {
    return InvalidArgument("a request may not have both a Content-Length and a Transfer-Encoding");
  }
  if (lengths_seen == 0) return {};
  bool digits = !length.empty() && length.size() <= 19 &&
                std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) return InvalidArgument("Content-Length " + Quote(length, 40) + " is not a byte count");
  out->content_length = std::strtoull(length.c_str(), nullptr, 10);
  return {};
}

}  // namespace

bool DecodeTarget(const std::string& target, std::string* path,
                  std::multimap<std::string, std::string>* params) {
  evhttp_uri* uri = evhttp_uri_parse_with_flags(target.c_str(), EVHTTP_URI_NONCONFORMANT);
  if (!uri) return false;
  const char* raw = evhttp_uri_get_path(uri);
  size_t n = 0;
  char* decoded = evhttp_uridecode(raw && *raw ? raw : "/", 0, &n);
  bool ok = decoded != nullptr;
  if (decoded) {
    path->assign(decoded, n);
    free(decoded);
  }
  const char* query = evhttp_uri_get_query(uri);
  if (ok && query && *query) {
    evkeyvalq kv;
    kv.tqh_first = nullptr;
    kv.tqh_last = &kv.tqh_first;
    ok = evhttp_parse_query_str(query, &kv) == 0;
    for (evkeyval* h = kv.tqh_first; ok && h; h = h->next.tqe_next) {
      params->emplace(h->key, h->value);
    }
    evhttp_clear_headers(&kv);
  }
  evhttp_uri_free(uri);
  return ok;
}

Result<RequestHead> ParseHead(const std::string& head) {
  RequestHead out;
  size_t eol = head.find("\r\n");
  MT_RETURN_IF_ERROR(ParseRequestLine(head.substr(0, eol), &out));
  int lengths = 0;
  std::string length;
  size_t pos = eol + 2;
  while (pos + 2 < head.size()) {
    size_t next = head.find("\r\n", pos);
    std::string h = head.substr(pos, next - pos);
    pos = next + 2;
    size_t colon = h.find(':');
    if (h.empty() || h[0] == ' ' || h[0] == '\t' || colon == std::string::npos || colon == 0) {
      return InvalidArgument("malformed header line: " + Quote(h, 80));
    }
    std::string name = Lower(Trim(h.substr(0, colon)));
    std::string value = Trim(h.substr(colon + 1));
    out.headers[name] = value;
    if (name == "content-length") {
      if (++lengths > 1 && value != length) return InvalidArgument("two different Content-Length headers");
      length = value;
      continue;
    }
    if (name == "transfer-encoding") {
      out.chunked = true;
      continue;
    }
    if (name == "expect") continue;  // a body kept from evhttp needs no 100 Continue from it
    (name == "connection" ? out.connection_line : out.other_lines) += h + "\r\n";
  }
  MT_RETURN_IF_ERROR(ParseFraming(length, lengths, &out));
  return out;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
  }
}

std::vector<std::string> PathSegments(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace mentat

// apis/json_text: the fast JSON parser gives exactly what nlohmann gives, value types included,
// or declines; AppendJson writes exactly what dump() writes.
#include "apis/json_text.h"

#include <cmath>

#include <gtest/gtest.h>

namespace mentat {
namespace {

// Equal values of equal types all the way down (nlohmann's == calls 5u and 5 equal).
bool SameTree(const Json& a, const Json& b) {
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key()) || !SameTree(it.value(), b[it.key()])) return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!SameTree(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_number_float()) return std::signbit(a.get<double>()) == std::signbit(b.get<double>()) && a == b;
  return a == b;
}

TEST(ParseJsonFast, GivesWhatNlohmannGives) {
  const char* texts[] = {
      R"({})",
      R"({"a":1})",
      " {\n\t\"kind\" : \"SecurityProfile\" ,\r\n \"metadata\":{\"name\":\"x-1\"}} ",
      R"({"n":0,"neg":-42,"big":999999999999999999,"min":-9223372036854775808})",
      R"({"u":18446744073709551615,"i":9223372036854775807})",
      R"({"t":true,"f":false,"z":null,"e":[],"o":{},"s":""})",
      R"({"list":[1,"two",[3,[4]],{"five":5}],"sp ace":" ~!@#$%^&*()_+`-={}|[]:;'<>?,./"})",
      R"({"a":"line\nbreak \"quoted\" back\\slash \/ \b\f\r\t"})",  // escapes
      R"({"a":"\u00e9 \u65e5\u672c \ud83d\ude00 \u0000 nul"})",      // \u escapes, a pair
      "{\"a\":\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80\"}",          // UTF-8
      R"({"f":1.5,"g":-0.0,"h":1e300,"i":0.1,"j":1E-2,"k":2.2250738585072011e-308,"l":5e-324})",
      R"({"m":1.0,"n":-1.7976931348623157e308,"o":123456789012345678901234567890.5})",
      R"([1,2,3])",
      R"("just a string")",
      R"(17)",
  };
  for (const char* text : texts) {
    SCOPED_TRACE(text);
    auto fast = ParseJsonFast(text, 64);
    ASSERT_TRUE(fast);
    EXPECT_TRUE(SameTree(*fast, Json::parse(text)));
  }
}

TEST(ParseJsonFast, DeclinesWhatNlohmannReadsDifferentlyOrRejects) {
  const char* texts[] = {
      "",
      "   ",
      R"({"a":1,"a":2})",                   // a key twice: nlohmann keeps the last
      R"({"o":{"a":1,"a":1}})",
      R"({"a":-0})",                        // nlohmann: a signed zero
      R"({"a":0,"b":-0.5})",                // a zero beside "-0" text is declined too
      R"({"a":18446744073709551616})",      // beyond 64 bits: nlohmann reads a float
      "\xef\xbb\xbf{}",                     // a byte order mark: nlohmann skips it
      R"({"a":1e400})",                     // out of range
      R"({"a":"\ud800"})",                  // a lone surrogate
      "{\"a\":\"\xc3\x28\"}",               // invalid UTF-8
      "{\"a\":\"tab\there\"}",              // a raw control character
      R"({"a":01})",                        // leading zero
      R"({"a":-})",
      R"({"a":1,})",                        // malformed
      R"({"a" 1})",
      R"({"a":1} x)",
      R"({"a":tru})",
      R"({"a":[1,2})",
      R"({a:1})",
  };
  for (const char* text : texts) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(ParseJsonFast(text, 64));
  }
}

TEST(ParseJsonFast, DeclinesNestingDeeperThanTheLimit) {
  EXPECT_TRUE(ParseJsonFast(R"({"a":{"b":[1]}})", 3));
  EXPECT_FALSE(ParseJsonFast(R"({"a":{"b":[1]}})", 2));
}

TEST(ParseJsonFast, ParsesDocumentsBeyondTheKeptParsersSize) {
  Json big = {{"kind", "Service"}, {"pad", std::string(200 << 10, 'x')}, {"n", -3}};
  auto small = ParseJsonFast(R"({"a":1})", 8);  // the thread's kept parser, before and after
  auto fast = ParseJsonFast(big.dump(), 8);
  ASSERT_TRUE(small && fast);
  EXPECT_TRUE(SameTree(*fast, big));
  EXPECT_TRUE(ParseJsonFast(R"({"a":2})", 8));
}

TEST(AppendJson, WritesWhatDumpWrites) {
  Json values[] = {
      Json::parse(R"({"kind":"SecurityProfile","metadata":{"name":"a","annotations":{"pad":"xxxx"},
                      "generation":1,"resourceVersion":"12"},"spec":{"driver":"exec"},"status":{}})"),
      Json::parse(R"({"esc":"quote \" backslash \\ newline \n tab \t bell \u0007 del \u007f",
                      "utf8":"caf\u00e9 \u65e5\u672c","k\"ey":"v"})"),
      Json::parse(R"({"f":1.5,"g":-0.0,"h":1e300,"i":0.1,"u":18446744073709551615,
                      "n":-9223372036854775808,"z":0,"b":[true,false,null],"e":[],"o":{}})"),
      Json("plain"),
      Json(3.25),
      Json(nullptr),
  };
  for (const Json& v : values) {
    std::string out = "prefix";
    AppendJson(v, &out);
    EXPECT_EQ(out, "prefix" + v.dump());
  }
}

}  // namespace
}  // namespace mentat

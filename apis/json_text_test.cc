// apis/json_text: the plain-JSON parser gives exactly what nlohmann gives, value types included,
// or declines; AppendJson writes exactly what dump() writes.
#include "apis/json_text.h"

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
  return a == b;
}

TEST(ParsePlainJson, GivesWhatNlohmannGives) {
  const char* texts[] = {
      R"({})",
      R"({"a":1})",
      " {\n\t\"kind\" : \"SecurityProfile\" ,\r\n \"metadata\":{\"name\":\"x-1\"}} ",
      R"({"n":0,"neg":-42,"big":999999999999999999,"min":-999999999999999999})",
      R"({"t":true,"f":false,"z":null,"e":[],"o":{},"s":""})",
      R"({"list":[1,"two",[3,[4]],{"five":5}],"sp ace":" ~!@#$%^&*()_+`-={}|[]:;'<>?,./"})",
      R"([1,2,3])",
      R"("just a string")",
      R"(17)",
  };
  for (const char* text : texts) {
    SCOPED_TRACE(text);
    auto plain = ParsePlainJson(text, 64);
    ASSERT_TRUE(plain);
    EXPECT_TRUE(SameTree(*plain, Json::parse(text)));
  }
}

TEST(ParsePlainJson, DeclinesAnythingElse) {
  const char* texts[] = {
      "",
      "   ",
      R"({"a":"line\nbreak"})",          // escapes
      R"({"a":"\u00e9"})",
      "{\"a\":\"caf\xc3\xa9\"}",            // non-ASCII
      "{\"a\":\"tab\there\"}",              // a control character
      "{\"a\":\"del\x7f\"}",
      R"({"a":1.5})",                       // fractions and exponents
      R"({"a":1e3})",
      R"({"a":01})",                        // leading zero
      R"({"a":-0})",
      R"({"a":-})",
      R"({"a":1234567890123456789})",       // near overflow
      R"({"a":1,"a":2})",                   // a key twice
      R"({"a":1,})",                        // malformed
      R"({"a" 1})",
      R"({"a":1} x)",
      R"({"a":tru})",
      R"({"a":[1,2})",
      R"({a:1})",
      "\xef\xbb\xbf{}",                     // a byte order mark
  };
  for (const char* text : texts) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(ParsePlainJson(text, 64));
  }
}

TEST(ParsePlainJson, DeclinesNestingDeeperThanTheLimit) {
  EXPECT_TRUE(ParsePlainJson(R"({"a":{"b":[1]}})", 3));
  EXPECT_FALSE(ParsePlainJson(R"({"a":{"b":[1]}})", 2));
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

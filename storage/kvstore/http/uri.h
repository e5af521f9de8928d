// Percent-encoding of URL parts, for the HTTP and S3 stores (which build on HTTP).
#pragma once

#include <string>
#include <string_view>

namespace jigsaw {

// RFC 3986 percent-encoding of everything but unreserved characters (A-Z a-z 0-9 - _ . ~); with
// keep_slash, '/' stays as is (object keys in paths).
std::string UriEncode(std::string_view s, bool keep_slash);

}  // namespace jigsaw

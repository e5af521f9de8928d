// The little XML that S3 speaks: element text with entities decoded, and ListObjectsV2 pages. Input
// comes from the network, so every function here is total (fuzzed by fuzz/fuzz_s3_xml).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "storage/kvstore/kvstore.h"

namespace jigsaw::s3 {

// The text of the first <tag>...</tag> in `xml` at or after `from`, entities (&amp; &#233; &#xE9; ...)
// decoded; "" if there is none. With end_out, where the element ends.
std::string XmlText(std::string_view xml, std::string_view tag, size_t from = 0, size_t* end_out = nullptr);

struct ListPage {
  std::vector<ListEntry> entries;  // full object keys, as listed
  std::string next_token;          // "" on the last page
};

// One ListObjectsV2 response; kDataLoss when it is not one (no <ListBucketResult>, a bad <Size>).
Result<ListPage> ParseListObjectsV2(std::string_view xml);

}  // namespace jigsaw::s3

#include "storage/kvstore/s3/s3_xml.h"

#include <charconv>
#include <cstdlib>

namespace jigsaw::s3 {
namespace {

void AppendUtf8(std::string* out, unsigned long cp) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x110000) {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

// The text of the first <tag>...</tag> in `xml` at or after `from`, XML entities decoded; "" if none.
std::string XmlText(std::string_view xml, std::string_view tag, size_t from, size_t* end_out) {
  std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  size_t b = xml.find(open, from);
  if (b == std::string_view::npos) return "";
  b += open.size();
  size_t e = xml.find(close, b);
  if (e == std::string_view::npos) return "";
  if (end_out) *end_out = e + close.size();
  std::string out;
  for (size_t i = b; i < e; ++i) {
    size_t semi = xml[i] == '&' ? xml.find(';', i) : std::string_view::npos;
    if (semi == std::string_view::npos || semi > e) {
      out += xml[i];
      continue;
    }
    std::string_view entity = xml.substr(i + 1, semi - i - 1);
    if (entity == "amp")
      out += '&';
    else if (entity == "lt")
      out += '<';
    else if (entity == "gt")
      out += '>';
    else if (entity == "quot")
      out += '"';
    else if (entity == "apos")
      out += '\'';
    else if (entity.starts_with("#"))
      AppendUtf8(&out, entity.starts_with("#x") ? std::strtoul(std::string(entity.substr(2)).c_str(), nullptr, 16)
                                                : std::strtoul(std::string(entity.substr(1)).c_str(), nullptr, 10));
    else
      out.append(xml.substr(i, semi - i + 1));  // unknown: kept as written
    i = semi;
  }
  return out;
}

Result<ListPage> ParseListObjectsV2(std::string_view xml) {
  if (xml.find("<ListBucketResult") == std::string_view::npos) {
    return DataLossError("not a ListObjectsV2 response: " + std::string(xml.substr(0, 200)));
  }
  ListPage page;
  size_t pos = 0;
  while ((pos = xml.find("<Contents>", pos)) != std::string_view::npos) {
    size_t end = xml.find("</Contents>", pos);
    if (end == std::string_view::npos) return DataLossError("unterminated <Contents> in a listing");
    std::string_view item = xml.substr(pos, end - pos);
    ListEntry e;
    e.key = XmlText(item, "Key");
    std::string size = XmlText(item, "Size");
    auto [p, ec] = std::from_chars(size.data(), size.data() + size.size(), e.size);
    if (e.key.empty() || ec != std::errc() || p != size.data() + size.size() || e.size < 0) {
      return DataLossError("bad <Contents> in a listing: " + std::string(item.substr(0, 200)));
    }
    page.entries.push_back(std::move(e));
    pos = end;
  }
  if (XmlText(xml, "IsTruncated") == "true") {
    page.next_token = XmlText(xml, "NextContinuationToken");
    if (page.next_token.empty()) return DataLossError("a truncated listing without a NextContinuationToken");
  }
  return page;
}

}  // namespace jigsaw::s3

// libFuzzer target: S3 XML responses (listings, errors) as a broken or hostile server could send them.
// Parsing must fail cleanly or return entries, never loop forever or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "storage/kvstore/s3/s3_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view xml(reinterpret_cast<const char*>(data), size);
  auto page = jigsaw::s3::ParseListObjectsV2(xml);
  if (page.ok()) {
    for (const auto& e : page->entries) {
      if (e.key.empty() || e.size < 0) __builtin_trap();
    }
  }
  (void)jigsaw::s3::XmlText(xml, "Code");
  return 0;
}

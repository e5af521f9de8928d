// The S3 XML readers on responses shaped like the ones AWS documents for ListObjectsV2 and errors.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "storage/kvstore/s3/s3_xml.h"

namespace jigsaw::s3 {
namespace {

TEST(S3Xml, ListingWithEntitiesAndAContinuationToken) {
  std::ifstream f(std::string(JIGSAW_SOURCE_DIR) + "/fuzz/seeds/fuzz_s3_xml/list.xml");
  std::stringstream ss;
  ss << f.rdbuf();
  auto page = ParseListObjectsV2(ss.str());
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].key, "p/a&b");
  EXPECT_EQ(page->entries[0].size, 0);
  EXPECT_EQ(page->entries[1].key, "p/caf\xc3\xa9");
  EXPECT_EQ(page->entries[1].size, 12);
  EXPECT_EQ(page->next_token, "tok/en==");
}

TEST(S3Xml, LastPageAndEmptyListing) {
  auto page = ParseListObjectsV2("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->entries.empty());
  EXPECT_EQ(page->next_token, "");
}

TEST(S3Xml, BrokenResponsesAreDataLoss) {
  for (const char* xml : {"", "<Error><Code>AccessDenied</Code></Error>",
                          "<ListBucketResult><Contents><Key>k</Key><Size>x</Size></Contents></ListBucketResult>",
                          "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
                          "<ListBucketResult><Contents><Key>k</Key>",
                          "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"}) {
    auto page = ParseListObjectsV2(xml);
    ASSERT_FALSE(page.ok()) << xml;
    EXPECT_EQ(page.status().code(), StatusCode::kDataLoss) << xml;
  }
}

TEST(S3Xml, TextDecodesEntitiesAndKeepsUnknownOnes) {
  EXPECT_EQ(XmlText("<Code>a&lt;b&gt;&quot;&apos;&#x41;&#66;&bogus;&</Code>", "Code"), "a<b>\"'AB&bogus;&");
  EXPECT_EQ(XmlText("<Code>unterminated", "Code"), "");
  EXPECT_EQ(XmlText("<A>1</A><A>2</A>", "A", 5), "2");
}

}  // namespace
}  // namespace jigsaw::s3

#include "storage/kvstore/checksum_record.h"

#include <gtest/gtest.h>

#include <atomic>

#include <nlohmann/json.hpp>

#include "storage/codec/crc32c.h"
#include "storage/kvstore/faulty.h"

namespace jigsaw {
namespace {

TEST(ChecksumRecord, RecordsWritesWritersAndDeletesAndReadsBackTheRest) {
  auto base = NewMemoryKvStore();
  ASSERT_TRUE(base->Write("earlier", "from an interrupted run").ok());  // not written through the recorder
  RecordingKvStore rec(base.get());
  ASSERT_TRUE(rec.Write("a/0", "alpha", {}).ok());
  ASSERT_TRUE(rec.Write("gone", "deleted next", {}).ok());
  ASSERT_TRUE(rec.Delete("gone").ok());
  auto w = rec.OpenWriter("b/big", {});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("part one, ").ok());
  ASSERT_TRUE((*w)->Append("part two").ok());
  ASSERT_TRUE((*w)->Commit().ok());
  ASSERT_TRUE(rec.Write("marker", "left out", {}).ok());
  ASSERT_TRUE(rec.WriteRecord({"marker"}).ok());

  auto record = ReadChecksumRecord(base.get());
  ASSERT_TRUE(record.ok() && record->has_value()) << record.status().message();
  const ChecksumRecord& r = **record;
  ASSERT_EQ(r.size(), 3u);  // a/0, b/big, earlier: not the deleted key, the marker or the record itself
  EXPECT_EQ(r.at("a/0"), (ObjectChecksum{5, Crc32c("alpha")}));
  EXPECT_EQ(r.at("b/big"), (ObjectChecksum{18, Crc32c("part one, part two")}));
  EXPECT_EQ(r.at("earlier"), (ObjectChecksum{23, Crc32c("from an interrupted run")}));
  EXPECT_EQ(CheckObject(r, "memory://", "a/0", "alpha"), "");
  EXPECT_NE(CheckObject(r, "memory://", "a/0", "alphA").find("memory:///a/0: 5 bytes"), std::string::npos);
  EXPECT_NE(CheckObject(r, "memory://", "new", "x").find("not in the checksum record"), std::string::npos);
}

TEST(ChecksumRecord, ARerunKeepsThePreviousEntriesAndAdoptsOtherRanks) {
  auto base = NewMemoryKvStore();
  {
    RecordingKvStore first(base.get());
    ASSERT_TRUE(first.Write("c/0", "written by the first run", {}).ok());
    ASSERT_TRUE(first.WriteRecord().ok());
  }
  // A rerun that writes only the metadata: the chunk's entry comes from the previous record, unread.
  std::atomic<int> chunk_reads{0};
  auto faulty = NewFaultyKvStore(base.get(), {.before = [&](std::string_view op, std::string_view key) -> Status {
                                                if (op == "read" && key == "c/0") ++chunk_reads;
                                                return OkStatus();
                                              },
                                              .mutate = nullptr});
  RecordingKvStore rerun(faulty.get());
  ASSERT_TRUE(rerun.Write("zarr.json", "{}", {}).ok());
  // Another rank's tile, written to the same store by another process and gathered.
  ASSERT_TRUE(base->Write("c/1", "rank 1's tile").ok());
  rerun.Adopt({{"c/1", {13, Crc32c("rank 1's tile")}}});
  ASSERT_TRUE(rerun.WriteRecord().ok());
  EXPECT_EQ(chunk_reads.load(), 0);
  auto r = **ReadChecksumRecord(base.get());
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.at("c/0"), (ObjectChecksum{24, Crc32c("written by the first run")}));
  EXPECT_EQ(r.at("c/1"), (ObjectChecksum{13, Crc32c("rank 1's tile")}));
  EXPECT_EQ(*DecodeChecksumRecord(EncodeChecksumRecord(r), "round trip"), r);
}

TEST(ChecksumRecord, CheckedReadsRefuseChangedAndMovedObjectsNamingThem) {
  auto base = NewMemoryKvStore("checked-reads");
  RecordingKvStore rec(base.get());
  ASSERT_TRUE(rec.Write("c/0", "tile zero", {}).ok());
  ASSERT_TRUE(rec.Write("c/1", "tile one!", {}).ok());
  ASSERT_TRUE(rec.WriteRecord().ok());
  auto opened = OpenCheckedKvStore("memory://checked-reads");
  ASSERT_TRUE(opened.ok());
  KvStore* checked = opened->get();
  EXPECT_EQ(checked->Read("c/0")->value, "tile zero");
  // A chunk copied over another one (each is a valid chunk): caught by its key's entry.
  ASSERT_TRUE(base->Write("c/0", "tile one!").ok());
  std::string into;
  for (auto r : {checked->Read("c/0").status(), checked->ReadInto("c/0", {}, &into).status()}) {
    EXPECT_EQ(r.code(), StatusCode::kDataLoss);
    EXPECT_NE(r.message().find("memory://checked-reads/c/0"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("checksum record"), std::string::npos) << r.message();
  }
  // Parts of an object, unknown keys and missing keys pass as they are.
  EXPECT_EQ(checked->Read("c/0", ByteRange::Span(0, 4))->value, "tile");
  ASSERT_TRUE(base->Write("other", "x").ok());
  EXPECT_TRUE(checked->Read("other").ok());
  EXPECT_TRUE(checked->Read("absent")->missing);
  // A store without a record opens unchecked.
  auto plain = OpenCheckedKvStore("memory://no-record-here");
  ASSERT_TRUE(plain.ok());
}

TEST(ChecksumRecord, AMalformedRecordIsDataLossNamingIt) {
  auto base = NewMemoryKvStore();
  for (const char* bad : {"not json", R"({"format": "other", "version": 1, "objects": {}})",
                          R"({"format": "jigsaw-checksums", "version": 1, "objects": {"k": [1]}})",
                          R"({"format": "jigsaw-checksums", "version": 1, "objects": {"k": [1, 4294967296]}})"}) {
    ASSERT_TRUE(base->Write(kChecksumRecordKey, bad).ok());
    auto r = ReadChecksumRecord(base.get());
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << bad;
    EXPECT_NE(r.status().message().find(kChecksumRecordKey), std::string::npos) << r.status().message();
  }
  ASSERT_TRUE(base->Delete(kChecksumRecordKey).ok());
  auto none = ReadChecksumRecord(base.get());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

}  // namespace
}  // namespace jigsaw

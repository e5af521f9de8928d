// The kvstore conformance suite: the same checks against every backend. A binary includes this header
// once and instantiates the suite with its backends (storage_tests: memory, file, the faulty decorator;
// remote_kvstore_tests: S3 on a real moto server).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<KvStore>()> open;  // a fresh, empty store
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class KvStoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { store_ = GetParam().open(); }
  std::unique_ptr<KvStore> store_;
};

TEST_P(KvStoreConformance, MissingKeyIsAStateNotAnError) {
  auto r = store_->Read("nope/zarr.json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->missing);
  EXPECT_TRUE(store_->Delete("nope/zarr.json").ok());
}

TEST_P(KvStoreConformance, WriteReadOverwriteDelete) {
  ASSERT_TRUE(store_->Write("a/b/c", "hello").ok());
  auto r = store_->Read("a/b/c");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->missing);
  EXPECT_EQ(r->value, "hello");
  ASSERT_TRUE(store_->Write("a/b/c", "bye", {.sync = true}).ok());
  EXPECT_EQ(store_->Read("a/b/c")->value, "bye");
  ASSERT_TRUE(store_->Write("a/empty", "").ok());
  EXPECT_FALSE(store_->Read("a/empty")->missing);
  EXPECT_EQ(store_->Read("a/empty")->value, "");
  ASSERT_TRUE(store_->Delete("a/b/c").ok());
  EXPECT_TRUE(store_->Read("a/b/c")->missing);
}

TEST_P(KvStoreConformance, ByteRanges) {
  ASSERT_TRUE(store_->Write("k", "0123456789").ok());
  EXPECT_EQ(store_->Read("k", ByteRange::Span(2, 5))->value, "234");
  EXPECT_EQ(store_->Read("k", ByteRange::Span(7, -1))->value, "789");
  EXPECT_EQ(store_->Read("k", ByteRange::Suffix(3))->value, "789");
  EXPECT_EQ(store_->Read("k", ByteRange::Suffix(30))->value, "0123456789");
  EXPECT_EQ(store_->Read("k", ByteRange::Span(10, 10))->value, "");
  // Past the end (either end of the range): kOutOfRange, naming the range and the key, on every backend.
  for (ByteRange r : {ByteRange::Span(5, 11), ByteRange::Span(11, -1), ByteRange::Span(12, 14)}) {
    auto bad = store_->Read("k", r);
    ASSERT_FALSE(bad.ok()) << r.ToString();
    EXPECT_EQ(bad.status().code(), StatusCode::kOutOfRange) << r.ToString() << ": " << bad.status().ToString();
    EXPECT_NE(bad.status().message().find("k"), std::string::npos) << bad.status().ToString();
  }
  std::string into;
  auto bad_into = store_->ReadInto("k", ByteRange::Span(5, 11), &into);
  ASSERT_FALSE(bad_into.ok());
  EXPECT_EQ(bad_into.status().code(), StatusCode::kOutOfRange) << bad_into.status().ToString();
  EXPECT_TRUE(store_->Read("missing", ByteRange::Span(0, 4))->missing);
}

TEST_P(KvStoreConformance, ListByPrefixSortedWithSizes) {
  for (const char* k : {"g/b/c/0", "g/a/zarr.json", "g/b/zarr.json", "h/x", "g/a/c/1"}) {
    ASSERT_TRUE(store_->Write(k, k).ok());
  }
  auto all = store_->List("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].key, "g/a/c/1");
  EXPECT_EQ((*all)[0].size, 7);
  auto g = store_->List("g/b");
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->size(), 2u);
  EXPECT_EQ((*g)[0].key, "g/b/c/0");
  EXPECT_EQ((*g)[1].key, "g/b/zarr.json");
  EXPECT_EQ(store_->List("g/a/")->size(), 2u);
  EXPECT_TRUE(store_->List("zzz")->empty());
}

TEST_P(KvStoreConformance, ListsManyKeysInOrder) {
  // More keys than one listing page of a paginated backend (the S3 tests set a page of 7).
  std::vector<std::string> keys;
  for (int i = 0; i < 25; ++i) keys.push_back("many/k" + std::to_string(1000 + i));
  for (const auto& k : keys) ASSERT_TRUE(store_->Write(k, "v").ok());
  auto listed = store_->List("many/");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ((*listed)[i].key, keys[i]);
}

TEST_P(KvStoreConformance, LargeValuesRoundTrip) {
  // 12 MiB: several parts for a multipart backend (the S3 tests set 5 MiB parts).
  std::string big(12 << 20, '\0');
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < big.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    big[i] = static_cast<char>(x);
  }
  ASSERT_TRUE(store_->Write("big/value", big).ok());
  auto whole = store_->Read("big/value");
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_TRUE(whole->value == big);
  auto middle = store_->Read("big/value", ByteRange::Span(5 << 20, (5 << 20) + 1000));
  ASSERT_TRUE(middle.ok());
  EXPECT_EQ(middle->value, big.substr(5 << 20, 1000));
  EXPECT_EQ((*store_->List("big/"))[0].size, static_cast<int64_t>(big.size()));
  // The same bytes through a writer, 1 MiB at a time (S3: a streamed multipart upload).
  auto w = store_->OpenWriter("big/streamed");
  ASSERT_TRUE(w.ok());
  for (size_t off = 0; off < big.size(); off += 1 << 20)
    ASSERT_TRUE((*w)->Append(std::string_view(big).substr(off, 1 << 20)).ok());
  ASSERT_TRUE((*w)->Commit().ok());
  auto streamed = store_->Read("big/streamed");
  ASSERT_TRUE(streamed.ok()) << streamed.status().ToString();
  EXPECT_TRUE(streamed->value == big);
}

TEST_P(KvStoreConformance, WritersCommitAtomicallyAndLeaveNothingWhenDropped) {
  {
    auto w = store_->OpenWriter("w/value");
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->Append("abc").ok());
    ASSERT_TRUE((*w)->Append("").ok());
    ASSERT_TRUE((*w)->Append(std::string(5000, 'd')).ok());
    EXPECT_TRUE(store_->Read("w/value")->missing);  // nothing visible before Commit()
    ASSERT_TRUE((*w)->Commit().ok());
  }
  EXPECT_EQ(store_->Read("w/value")->value, "abc" + std::string(5000, 'd'));
  {
    auto w = store_->OpenWriter("w/dropped");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("partial").ok());
  }
  EXPECT_TRUE(store_->Read("w/dropped")->missing);
  auto listed = store_->List("w/");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "w/value");
  EXPECT_FALSE(store_->OpenWriter("a//b").ok());
}

TEST_P(KvStoreConformance, DirectWritersKeepEveryByteAndTheExactLength) {
  // Lengths around the 4 KiB blocks and the 8 MiB staging buffer of the file store's O_DIRECT writer,
  // appended in uneven pieces; the option is a hint elsewhere.
  for (size_t length : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, (size_t{8} << 20) + 3}) {
    std::string value(length, '\0');
    for (size_t i = 0; i < length; ++i) value[i] = static_cast<char>((i * 131) >> 3);
    auto w = store_->OpenWriter("d/v" + std::to_string(length), {.sync = true, .direct = true});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    for (size_t at = 0, piece = 1; at < length; at += piece, piece = piece * 3 + 1) {
      ASSERT_TRUE((*w)->Append(std::string_view(value).substr(at, piece)).ok());
    }
    ASSERT_TRUE((*w)->Commit().ok());
    auto r = store_->Read("d/v" + std::to_string(length));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->value.size(), length);
    EXPECT_TRUE(r->value == value) << length;
  }
}

TEST_P(KvStoreConformance, InvalidKeysAreRefused) {
  for (const char* k : {"", "/abs", "a/../b", "..", "a//b", "a/./b", "a/", "a\\b"}) {
    EXPECT_EQ(store_->Write(k, "x").code(), StatusCode::kInvalidArgument) << k;
    EXPECT_FALSE(store_->Read(k).ok()) << k;
    EXPECT_FALSE(store_->Delete(k).ok()) << k;
  }
}

TEST_P(KvStoreConformance, ConcurrentWritersNeverTearValues) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string v(10000, static_cast<char>('a' + t));
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(store_->Write("shared", v).ok());
    });
  }
  std::atomic<bool> torn{false};
  std::atomic<int> whole{0};  // values the reader saw: a reader that saw none would have checked nothing
  std::thread reader([&] {
    for (int i = 0; i < 200 || whole == 0; ++i) {
      auto r = store_->Read("shared");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      if (!r->missing) {
        const std::string& v = r->value;
        if (v.size() != 10000 || v.find_first_not_of(v[0]) != std::string::npos) torn = true;
        ++whole;
      }
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  EXPECT_FALSE(torn);
  EXPECT_GT(whole, 0);
  // And the value left is one writer's, whole.
  auto last = store_->Read("shared");
  ASSERT_TRUE(last.ok() && !last->missing);
  EXPECT_EQ(last->value.size(), 10000u);
  EXPECT_EQ(last->value.find_first_not_of(last->value[0]), std::string::npos);
}

}  // namespace jigsaw

// The kvstore conformance suite: the same checks against every backend. A new backend (HTTP, S3) adds a
// row to the parameter list below.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "storage/kvstore/faulty.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {
namespace {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<KvStore>()> open;  // a fresh, empty store
};

std::string TempDir() {
  static std::atomic<int> n{0};
  auto dir = std::filesystem::temp_directory_path() /
             ("jigsaw-kv-" + std::to_string(getpid()) + "-" + std::to_string(n++));
  std::filesystem::remove_all(dir);
  return dir.string();
}

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
  auto bad = store_->Read("k", ByteRange::Span(5, 11));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(store_->Read("k", ByteRange::Span(11, -1)).ok());
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
  std::thread reader([&] {
    for (int i = 0; i < 200; ++i) {
      auto r = store_->Read("shared");
      if (r.ok() && !r->missing) {
        const std::string& v = r->value;
        if (v.size() != 10000 || v.find_first_not_of(v[0]) != std::string::npos) torn = true;
      }
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  EXPECT_FALSE(torn);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, KvStoreConformance,
    ::testing::Values(Backend{"memory", [] { return NewMemoryKvStore(); }},
                      Backend{"file", [] { return NewFileKvStore(TempDir()); }},
                      Backend{"faulty_passthrough",
                              [] {
                                // The decorator with no faults must be indistinguishable from its base.
                                static std::vector<std::unique_ptr<KvStore>> bases;
                                bases.push_back(NewMemoryKvStore());
                                return NewFaultyKvStore(bases.back().get(), {});
                              }}),
    [](const auto& info) { return info.param.name; });

TEST(MemoryKvStore, SameNameSharesContents) {
  auto a = OpenKvStore("memory://shared-test");
  auto b = OpenKvStore("memory://shared-test");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Write("k", "v").ok());
  EXPECT_EQ((*b)->Read("k")->value, "v");
  EXPECT_EQ((*a)->url(), "memory://shared-test");
}

TEST(FileKvStore, NoTemporaryFilesLeftOrListed) {
  std::string dir = TempDir();
  auto s = NewFileKvStore(dir);
  ASSERT_TRUE(s->Write("x/y", "data", {.sync = true}).ok());
  int files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  // A leftover temporary file from a crashed writer is never listed as a key, and List() removes it once
  // its writer is gone; one of a live writer stays.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  std::string orphan = dir + "/x/y.__jigsaw_tmp." + std::to_string(dead) + ".2";
  std::string live = dir + "/x/z.__jigsaw_tmp." + std::to_string(getppid()) + ".3";
  std::ofstream(orphan) << "partial";
  std::ofstream(live) << "in progress";
  EXPECT_EQ(s->List("")->size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(orphan));
  EXPECT_TRUE(std::filesystem::exists(live));
}

TEST(FileKvStore, DeleteRemovesDirectoriesItEmptied) {
  std::string dir = TempDir();
  auto s = NewFileKvStore(dir);
  ASSERT_TRUE(s->Write("a/b/c", "1").ok());
  ASSERT_TRUE(s->Write("a/d", "2").ok());
  ASSERT_TRUE(s->Delete("a/b/c").ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/a/b"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/a/d"));
  ASSERT_TRUE(s->Delete("a/d").ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/a"));
  EXPECT_TRUE(std::filesystem::exists(dir));
  ASSERT_TRUE(s->Write("a/b/c", "again").ok());
  EXPECT_EQ(s->Read("a/b/c")->value, "again");
}

TEST(FileKvStore, WriteIntoAFileInTheWayFails) {
  std::string dir = TempDir();
  auto s = NewFileKvStore(dir);
  ASSERT_TRUE(s->Write("a", "file").ok());
  Status st = s->Write("a/b", "x");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(dir), std::string::npos) << st.message();
}

TEST(OpenKvStore, Urls) {
  EXPECT_TRUE(OpenKvStore("/tmp/x").ok());
  EXPECT_EQ((*OpenKvStore("file:///tmp/x"))->url(), "file:///tmp/x");
  EXPECT_EQ(OpenKvStore("file://relative").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenKvStore("ftp://host/x").status().code(), StatusCode::kUnimplemented);
}

TEST(FaultyKvStore, InjectsErrorsAndCorruption) {
  auto base = NewMemoryKvStore();
  ASSERT_TRUE(base->Write("k", "abc").ok());
  int reads = 0;
  auto f = NewFaultyKvStore(base.get(), {[&](std::string_view op, std::string_view) {
                                           if (op == "read" && ++reads == 2) return IoError("injected");
                                           return OkStatus();
                                         },
                                         [](std::string_view, std::string& v) { v[0] ^= 1; }});
  EXPECT_EQ(f->Read("k")->value, "`bc");
  EXPECT_EQ(f->Read("k").status().code(), StatusCode::kIo);
  EXPECT_TRUE(f->Read("k").ok());
}

TEST(PrefixedKvStore, SeesOnlyItsPrefix) {
  auto base = NewMemoryKvStore();
  auto p = NewPrefixedKvStore(base.get(), "grp/");
  ASSERT_TRUE(p->Write("a/zarr.json", "{}").ok());
  EXPECT_FALSE(base->Read("grp/a/zarr.json")->missing);
  ASSERT_EQ(p->List("")->size(), 1u);
  EXPECT_EQ(p->List("")->front().key, "a/zarr.json");
}

}  // namespace
}  // namespace jigsaw

namespace jigsaw {
namespace {

TEST_P(KvStoreConformance, ReadIntoReusesAndResizesTheBuffer) {
  // Growing then shrinking then growing again: the value must always be exactly the stored bytes.
  ASSERT_TRUE(store_->Write("small", "abc").ok());
  ASSERT_TRUE(store_->Write("big", std::string(100000, 'x')).ok());
  ASSERT_TRUE(store_->Write("bigger", std::string(250001, 'y')).ok());
  ASSERT_TRUE(store_->Write("mid", std::string(150000, 'z')).ok());
  std::string buf;
  // big -> mid grows the buffer by less than double (libstdc++ 12 then reports the doubled capacity).
  for (const char* k : {"small", "big", "small", "bigger", "big", "small", "big", "mid"}) {
    auto r = store_->ReadInto(k, {}, &buf);
    ASSERT_TRUE(r.ok()) << k << ": " << r.status().ToString();
    EXPECT_TRUE(*r);
    EXPECT_EQ(buf, store_->Read(k)->value) << k;
  }
  auto r = store_->ReadInto("bigger", ByteRange::Suffix(7), &buf);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(buf, "yyyyyyy");
  r = store_->ReadInto("absent", {}, &buf);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

}  // namespace
}  // namespace jigsaw

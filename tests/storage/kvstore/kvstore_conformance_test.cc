// The local backends under the kvstore conformance suite (kvstore_conformance.h), and their own checks.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "storage/kvstore/faulty.h"
#include "storage/kvstore/kvstore.h"
#include "tests/storage/kvstore/kvstore_conformance.h"

namespace jigsaw {
namespace {

std::string TempDir() {
  static std::atomic<int> n{0};
  auto dir =
      std::filesystem::temp_directory_path() / ("jigsaw-kv-" + std::to_string(getpid()) + "-" + std::to_string(n++));
  std::filesystem::remove_all(dir);
  return dir.string();
}

INSTANTIATE_TEST_SUITE_P(Backends, KvStoreConformance,
                         ::testing::Values(Backend{"memory", [] { return NewMemoryKvStore(); }},
                                           Backend{"file", [] { return NewFileKvStore(TempDir()); }},
                                           Backend{"faulty_passthrough",
                                                   [] {
                                                     // The decorator with no faults must be indistinguishable from its
                                                     // base.
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

TEST(FileKvStore, MapsRangesPrivatelyAndOutlivesTheValue) {
  auto store = NewFileKvStore(TempDir());
  std::string value(3 * 4096 + 100, '\0');
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(store->Write("d/v", value).ok());
  // An offset inside a page, to the end, and all of it.
  for (ByteRange range : {ByteRange::Span(4096 + 10, 3 * 4096 + 50), ByteRange::Span(5000, -1), ByteRange::All()}) {
    auto m = store->Map("d/v", range);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_NE(*m, nullptr);
    EXPECT_EQ(std::string((*m)->data(), (*m)->size()), store->Read("d/v", range)->value) << range.ToString();
  }
  auto m = store->Map("d/v", ByteRange::Span(4096, 8192));
  ASSERT_TRUE(m.ok() && *m);
  (*m)->data()[0] = 'X';  // copy-on-write: the file keeps its byte
  EXPECT_EQ(store->Read("d/v", ByteRange::Span(4096, 4097))->value, value.substr(4096, 1));
  // Replaced, then deleted: the mapping still shows the bytes it mapped.
  ASSERT_TRUE(store->Write("d/v", std::string(value.size(), 'z')).ok());
  ASSERT_TRUE(store->Delete("d/v").ok());
  EXPECT_EQ(std::string((*m)->data() + 1, 4095), value.substr(4097, 4095));
  // Missing keys and empty ranges map to nothing (callers read instead); a range past the end is refused.
  EXPECT_EQ(*store->Map("d/v", {}), nullptr);
  ASSERT_TRUE(store->Write("e", "").ok());
  EXPECT_EQ(*store->Map("e", {}), nullptr);
  ASSERT_TRUE(store->Write("f", "abc").ok());
  EXPECT_EQ(store->Map("f", ByteRange::Span(2, 9)).status().code(), StatusCode::kOutOfRange);
  // Seen through a prefix too; stores that cannot map say so with nullptr.
  auto prefixed = NewPrefixedKvStore(store.get(), "d");
  ASSERT_TRUE(store->Write("d/w", "mapped").ok());
  EXPECT_EQ(std::string((*prefixed->Map("w", {}))->data(), 6), "mapped");
  auto memory = NewMemoryKvStore();
  ASSERT_TRUE(memory->Write("k", "v").ok());
  EXPECT_EQ(*memory->Map("k", {}), nullptr);
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

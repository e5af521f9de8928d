// KvStore: the one interface between jigsaw and where bytes live (memory, files, HTTP, GCS, S3).
//
// Contract:
// - Keys are '/'-separated relative paths ("data/zarr.json"). ValidateKey() refuses "", "..", ".",
//   empty segments ("a//b"), absolute paths and backslashes; every backend calls it.
// - Read() of a missing key is not an error: the result's `missing` is true. Errors are for I/O faults.
// - A ByteRange maps one-to-one onto an HTTP Range header: [inclusive_min, exclusive_max), with
//   exclusive_max = -1 meaning "to the end"; Suffix(n) is the last n bytes (the whole value when shorter).
//   A range that starts or ends past the value is kOutOfRange.
// - Write() replaces the whole value atomically: a reader sees the old value or the new one, never a mix.
//   With `sync`, the value is durable when Write() returns.
// - Delete() of a missing key succeeds. List(prefix) returns every key starting with prefix, sorted.
// - All methods are safe to call from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace jigsaw {

struct ByteRange {
  int64_t inclusive_min = 0;
  int64_t exclusive_max = -1;  // -1: to the end
  int64_t suffix_length = -1;  // >= 0: the last suffix_length bytes; the other fields are ignored

  static ByteRange All() { return {}; }
  static ByteRange Suffix(int64_t n) { return {0, -1, n}; }
  static ByteRange Span(int64_t begin, int64_t end) { return {begin, end, -1}; }
  bool is_all() const { return suffix_length < 0 && inclusive_min == 0 && exclusive_max < 0; }
  std::string ToString() const;
};

struct ReadResult {
  bool missing = false;
  std::string value;  // the bytes of the requested range; empty when missing
};

struct WriteOptions {
  bool sync = false;  // fsync the value (and its directory) before returning
  // For OpenWriter: large values written once and not read again soon (checkpoint rank files) bypass the
  // page cache where the store and file system allow (O_DIRECT): no kernel copy, and the cache keeps what
  // is read (the training data). Ignored elsewhere.
  bool direct = false;
  // Create only: kFailedPrecondition ("already exists") when the key has a value, atomically against other
  // writers of the same key (a file: link(2); S3: a conditional PUT, If-None-Match: *; memory: under its
  // lock). Stores that cannot say so refuse it (kUnimplemented). For claims that two processes must not
  // both win (jigsaw-shard --part).
  bool if_absent = false;
};

// The status a Write with if_absent returns when the key has a value.
inline bool IsAlreadyExists(const Status& s) {
  return s.code() == StatusCode::kFailedPrecondition && s.message().find("already exists") != std::string::npos;
}

struct ListEntry {
  std::string key;
  int64_t size = 0;
};

// A value written in pieces (a checkpoint's rank file, tile after tile), without holding it in memory
// where the backend can avoid it. Nothing is visible until Commit(), which replaces the value atomically
// as Write() does; a writer dropped without Commit() leaves no trace. One thread at a time.
class KvWriter {
 public:
  virtual ~KvWriter() = default;
  virtual Status Append(std::string_view bytes) = 0;
  virtual Status Commit() = 0;
};

// Part of a stored value mapped into memory instead of copied (the file store): a private, copy-on-write
// mapping, so pages are shared with the page cache until written and writes stay in this process. Valid
// while the object lives, also after the value is replaced or deleted (file stores only ever rename over
// or unlink files, never rewrite them in place). A file that another program truncates in place while it
// is mapped faults (SIGBUS) where a read would have failed: map only what is not being rewritten (stores
// and checkpoints jigsaw wrote, or read-only datasets).
class MappedBytes {
 public:
  // Takes over the mapping [base, base + length); the value's bytes start `skip` bytes in.
  MappedBytes(void* base, size_t length, size_t skip, size_t size)
      : base_(base), length_(length), data_(static_cast<char*>(base) + skip), size_(size) {}
  ~MappedBytes();
  MappedBytes(const MappedBytes&) = delete;
  MappedBytes& operator=(const MappedBytes&) = delete;
  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* base_;
  size_t length_;
  char* data_;
  size_t size_;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual Result<ReadResult> Read(std::string_view key, ByteRange range = {}) = 0;
  // As Read(), into *value, reusing its capacity (hot loops keep one buffer per thread and so avoid an
  // allocation and its page faults per chunk). Returns false when the key is missing.
  virtual Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value);
  // `range` of a value mapped into memory (see MappedBytes); nullptr where the store cannot map (remote
  // stores, the default) or the key is missing: callers then read. For large reads of values that are
  // only read, as a checkpoint's tiles, this saves the copy and the first-touch faults of a buffer.
  virtual Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range);
  virtual Status Write(std::string_view key, std::string_view value, WriteOptions options = {}) = 0;
  // A writer for `key`. The default collects the pieces and Write()s them on Commit(); the file store
  // streams them to disk.
  virtual Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions options = {});
  virtual Status Delete(std::string_view key) = 0;
  virtual Result<std::vector<ListEntry>> List(std::string_view prefix) = 0;
  // Whether the store holds no key at all; the file store stops at the first file (List("") of "/" would
  // walk the whole file system).
  virtual Result<bool> IsEmpty();
  // A URL naming this store (for messages and for reopening), never containing credentials.
  virtual std::string url() const = 0;
  // How many threads should wait on this store's requests at once: 0 for local stores (as many as
  // cores); remote stores ask for more (see RunWithIoThreads in io_threads.h).
  virtual int io_threads() const { return 0; }
};

Status ValidateKey(std::string_view key);

// kFailedPrecondition naming the store when it holds any key: destinations of whole-store writes (a copy,
// an export) must be new. A store that cannot list is taken as empty.
Status RequireEmpty(KvStore* store);

// Read() for backends whose native read is ReadInto() (file, HTTP, S3).
Result<ReadResult> ReadThroughReadInto(KvStore* store, std::string_view key, ByteRange range);

// Applies `range` to a whole value of `size` bytes; returns [begin, end) or kOutOfRange.
Result<std::pair<int64_t, int64_t>> ResolveByteRange(const ByteRange& range, int64_t size);

// The reference implementation: values in a map. Stores opened with the same name in one process share
// their contents (so "memory://x" can be opened twice); an empty name gives a private store.
std::unique_ptr<KvStore> NewMemoryKvStore(std::string_view name = "");

// Files under `root` (created on first write). Writes go to a temporary file beside the key, then rename.
std::unique_ptr<KvStore> NewFileKvStore(std::string root);

// Opens "memory://name", "file:///abs/path", a plain path, "s3://bucket/prefix" (S3OptionsFromEnvironment),
// "gs://bucket/prefix" (anonymous, read-only) or "http(s)://host/path" (read-only).
Result<std::unique_ptr<KvStore>> OpenKvStore(std::string_view url);

// A kvstore seen under a key prefix of another one ("group/sub/"), owning or borrowing it.
std::unique_ptr<KvStore> NewPrefixedKvStore(KvStore* base, std::string prefix);

// Joins key segments with '/', skipping empty ones.
std::string JoinKey(std::string_view a, std::string_view b);

}  // namespace jigsaw

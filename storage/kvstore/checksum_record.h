// The checksum record: the size and CRC-32C of every object of a store, written with the store by jigsaw's
// whole-store writers (jigsaw-shard run, jigsaw-store copy, a checkpoint's Zarr export) after every other
// object but the completion mark. With it `verify` and readers find any changed, truncated, missing, extra
// or moved object, whatever the format checks itself: Zarr v2 codecs carry no checksum, and a v3 chunk's
// crc32c does not know which key it belongs to (a chunk copied over another one passes its own check).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/kvstore/forwarding.h"

namespace jigsaw {

inline constexpr const char* kChecksumRecordKey = "jigsaw-checksums.json";

struct ObjectChecksum {
  int64_t size = 0;
  uint32_t crc32c = 0;
  bool operator==(const ObjectChecksum&) const = default;
};
using ChecksumRecord = std::map<std::string, ObjectChecksum, std::less<>>;

// A store being written: remembers the size and CRC of every Write() and committed writer; a Delete()
// forgets the key. Safe from many threads, as every store.
class RecordingKvStore : public ForwardingKvStore {
 public:
  using ForwardingKvStore::ForwardingKvStore;
  Status Write(std::string_view key, std::string_view value, WriteOptions options) override;
  Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions options) override;
  Status Delete(std::string_view key) override;

  // Lists the store and writes the record of every object in it but the record itself and the keys in
  // `leave_out` (a completion mark deleted next). An object not written through this store keeps the entry
  // of the store's previous record when its size agrees (a rerun of a finished job), or else (an
  // interrupted earlier run's) is read back once for its CRC.
  Status WriteRecord(const std::vector<std::string>& leave_out = {});

  // What this store has recorded; entries recorded elsewhere (other ranks of a job writing one store).
  ChecksumRecord Recorded();
  void Adopt(const ChecksumRecord& others);

 private:
  void Remember(std::string_view key, ObjectChecksum sum);
  std::mutex mu_;
  ChecksumRecord recorded_;
};

// A record as the JSON text of jigsaw-checksums.json, and back (kDataLoss naming `what` when malformed).
std::string EncodeChecksumRecord(const ChecksumRecord& record);
Result<ChecksumRecord> DecodeChecksumRecord(std::string_view text, std::string_view what);

// The store's record; nullopt when it has none (stores written before records, or by others). A record
// that does not parse is kDataLoss naming it.
Result<std::optional<ChecksumRecord>> ReadChecksumRecord(KvStore* store);

// "" when `bytes` are what `record` says of `key`; else the problem, naming store and key (a changed,
// truncated or moved object, or one the record does not list).
std::string CheckObject(const ChecksumRecord& record, std::string_view store_url, std::string_view key,
                        std::string_view bytes);

// A store being read, with its record: every read of a whole recorded object is checked, and a mismatch is
// kDataLoss naming store and key. Reads of a part of an object pass unchecked (the inner chunks of a v3
// shard, which carry their own crc32c).
std::unique_ptr<KvStore> NewCheckedKvStore(KvStore* base, ChecksumRecord record);
std::unique_ptr<KvStore> NewCheckedKvStore(std::unique_ptr<KvStore> base, ChecksumRecord record);
// Opens `url` (OpenKvStore) to read a store jigsaw wrote: checked against its record when it has one.
Result<std::unique_ptr<KvStore>> OpenCheckedKvStore(std::string_view url);

}  // namespace jigsaw

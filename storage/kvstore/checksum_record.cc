#include "storage/kvstore/checksum_record.h"

#include <set>

#include <mutex>

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/first_error.h"
#include "storage/codec/crc32c.h"
#include "storage/kvstore/io_threads.h"

namespace jigsaw {
namespace {

using json = nlohmann::json;

class RecordingWriter final : public KvWriter {
 public:
  RecordingWriter(std::unique_ptr<KvWriter> inner, std::function<void(ObjectChecksum)> done)
      : inner_(std::move(inner)), done_(std::move(done)) {}
  Status Append(std::string_view bytes) override {
    sum_.crc32c = Crc32c(bytes, sum_.crc32c);
    sum_.size += static_cast<int64_t>(bytes.size());
    return inner_->Append(bytes);
  }
  Status Commit() override {
    RETURN_IF_ERROR(inner_->Commit());
    done_(sum_);
    return OkStatus();
  }

 private:
  std::unique_ptr<KvWriter> inner_;
  std::function<void(ObjectChecksum)> done_;
  ObjectChecksum sum_;
};

ObjectChecksum SumOf(std::string_view bytes) { return {static_cast<int64_t>(bytes.size()), Crc32c(bytes)}; }

std::string Describe(const ObjectChecksum& s) {
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", s.crc32c);
  return std::to_string(s.size) + " bytes, crc32c " + crc;
}

bool Left(const std::vector<std::string>& leave_out, std::string_view key) {
  return key == kChecksumRecordKey || std::find(leave_out.begin(), leave_out.end(), key) != leave_out.end();
}

class CheckedKvStore final : public ForwardingKvStore {
 public:
  CheckedKvStore(KvStore* base, ChecksumRecord record) : ForwardingKvStore(base), record_(std::move(record)) {}
  CheckedKvStore(std::unique_ptr<KvStore> base, ChecksumRecord record)
      : ForwardingKvStore(std::move(base)), record_(std::move(record)) {}

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    if (!range.is_all()) RETURN_IF_ERROR(CheckWholeOnce(key));
    ASSIGN_OR_RETURN(ReadResult r, base()->Read(key, range));
    if (!r.missing && range.is_all()) RETURN_IF_ERROR(Check(key, r.value));
    return r;
  }
  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    if (!range.is_all()) RETURN_IF_ERROR(CheckWholeOnce(key));
    ASSIGN_OR_RETURN(bool found, base()->ReadInto(key, range, value));
    if (found && range.is_all()) RETURN_IF_ERROR(Check(key, *value));
    return found;
  }
  Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range) override {
    if (!range.is_all()) RETURN_IF_ERROR(CheckWholeOnce(key));
    ASSIGN_OR_RETURN(auto mapped, base()->Map(key, range));
    if (mapped && range.is_all()) RETURN_IF_ERROR(Check(key, {mapped->data(), mapped->size()}));
    return mapped;
  }

 private:
  Status Check(std::string_view key, std::string_view bytes) {
    if (!record_.contains(key)) return OkStatus();  // not written with the store (nothing to check it against)
    std::string problem = CheckObject(record_, url(), key, bytes);
    if (!problem.empty()) return DataLossError(problem);
    std::lock_guard<std::mutex> lock(mu_);
    checked_.insert(std::string(key));
    return OkStatus();
  }

  // Part of an object (a shard's chunk, by byte range) cannot be checked against the record of the whole:
  // the whole object is checked the first time any part of it is read (a shard copied over another is
  // caught), then its parts are read as asked.
  Status CheckWholeOnce(std::string_view key) {
    if (!record_.contains(key)) return OkStatus();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (checked_.count(std::string(key))) return OkStatus();
    }
    ASSIGN_OR_RETURN(auto mapped, base()->Map(key, ByteRange{}));
    if (mapped) return Check(key, {mapped->data(), mapped->size()});
    ASSIGN_OR_RETURN(ReadResult r, base()->Read(key, ByteRange{}));
    if (r.missing) return OkStatus();  // absent: the read itself says so
    return Check(key, r.value);
  }

  const ChecksumRecord record_;
  std::mutex mu_;
  std::set<std::string> checked_;  // objects whose whole bytes matched the record
};

}  // namespace

void RecordingKvStore::Remember(std::string_view key, ObjectChecksum sum) {
  std::lock_guard<std::mutex> lock(mu_);
  recorded_.insert_or_assign(std::string(key), sum);
}

Status RecordingKvStore::Write(std::string_view key, std::string_view value, WriteOptions options) {
  RETURN_IF_ERROR(base()->Write(key, value, options));
  Remember(key, SumOf(value));
  return OkStatus();
}

Result<std::unique_ptr<KvWriter>> RecordingKvStore::OpenWriter(std::string_view key, WriteOptions options) {
  ASSIGN_OR_RETURN(auto inner, base()->OpenWriter(key, options));
  std::string k(key);
  return std::unique_ptr<KvWriter>(
      new RecordingWriter(std::move(inner), [this, k](ObjectChecksum sum) { Remember(k, sum); }));
}

Status RecordingKvStore::Delete(std::string_view key) {
  RETURN_IF_ERROR(base()->Delete(key));
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = recorded_.find(key); it != recorded_.end()) recorded_.erase(it);
  return OkStatus();
}

ChecksumRecord RecordingKvStore::Recorded() {
  std::lock_guard<std::mutex> lock(mu_);
  return recorded_;
}

void RecordingKvStore::Adopt(const ChecksumRecord& others) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, sum] : others) recorded_.insert_or_assign(key, sum);
}

Status RecordingKvStore::WriteRecord(const std::vector<std::string>& leave_out) {
  ASSIGN_OR_RETURN(auto keys, base()->List(""));
  auto previous = ReadChecksumRecord(base());  // a damaged one is simply not used
  const ChecksumRecord none;
  const ChecksumRecord& before = previous.ok() && previous->has_value() ? **previous : none;
  std::vector<std::string> unknown;
  ChecksumRecord record;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : keys) {
      if (Left(leave_out, e.key)) continue;
      auto it = recorded_.find(e.key);
      auto old = before.find(e.key);
      if (it != recorded_.end() && it->second.size == e.size) {
        record[e.key] = it->second;
      } else if (it == recorded_.end() && old != before.end() && old->second.size == e.size) {
        record[e.key] = old->second;
      } else {
        unknown.push_back(e.key);
      }
    }
  }
  // Objects of an interrupted earlier run (this one resumed it), or changed behind this store: read back.
  std::vector<ObjectChecksum> sums(unknown.size());
  FirstError err;
  RunWithIoThreads(*base(), [&] {
    tbb::parallel_for(size_t{0}, unknown.size(), [&](size_t i) {
      if (err.failed()) return;
      auto r = base()->Read(unknown[i]);
      if (!r.ok()) return err.Set(r.status());
      sums[i] = SumOf(r->value);
    });
  });
  RETURN_IF_ERROR(err.Get());
  for (size_t i = 0; i < unknown.size(); ++i) record[unknown[i]] = sums[i];
  return base()->Write(kChecksumRecordKey, EncodeChecksumRecord(record), {.sync = true});
}

std::string EncodeChecksumRecord(const ChecksumRecord& record) {
  json objects = json::object();
  for (const auto& [key, sum] : record) objects[key] = {sum.size, sum.crc32c};
  return json({{"format", "jigsaw-checksums"}, {"version", 1}, {"algorithm", "crc32c"}, {"objects", objects}}).dump() +
         "\n";
}

Result<ChecksumRecord> DecodeChecksumRecord(std::string_view text, std::string_view what) {
  const std::string where(what);
  ChecksumRecord record;
  try {
    json j = json::parse(text);
    if (j.value("format", "") != "jigsaw-checksums" || j.value("version", 0) != 1 || !j.at("objects").is_object()) {
      return DataLossError(where + " is not a jigsaw checksum record (format jigsaw-checksums, version 1)");
    }
    for (const auto& [key, v] : j["objects"].items()) {
      if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned() ||
          v[1].get<uint64_t>() > UINT32_MAX) {
        return DataLossError(where + ": the entry of " + key + " is not [size, crc32c]");
      }
      record[key] = {v[0].get<int64_t>(), static_cast<uint32_t>(v[1].get<uint64_t>())};
    }
  } catch (const json::exception& e) {
    return DataLossError(where + " does not parse: " + e.what());
  }
  return record;
}

Result<std::optional<ChecksumRecord>> ReadChecksumRecord(KvStore* store) {
  ASSIGN_OR_RETURN(ReadResult r, store->Read(kChecksumRecordKey));
  if (r.missing) return std::optional<ChecksumRecord>();
  ASSIGN_OR_RETURN(ChecksumRecord record, DecodeChecksumRecord(r.value, store->url() + "/" + kChecksumRecordKey));
  return std::optional<ChecksumRecord>(std::move(record));
}

std::string CheckObject(const ChecksumRecord& record, std::string_view store_url, std::string_view key,
                        std::string_view bytes) {
  const std::string where = std::string(store_url) + "/" + std::string(key);
  auto it = record.find(key);
  if (it == record.end()) return where + ": not in the checksum record (added after the store was written)";
  const ObjectChecksum got = SumOf(bytes);
  if (got == it->second) return "";
  return where + ": " + Describe(got) + ", but the checksum record (" + kChecksumRecordKey + ") says " +
         Describe(it->second) + ": changed, truncated or moved since it was written";
}

std::unique_ptr<KvStore> NewCheckedKvStore(KvStore* base, ChecksumRecord record) {
  return std::make_unique<CheckedKvStore>(base, std::move(record));
}

std::unique_ptr<KvStore> NewCheckedKvStore(std::unique_ptr<KvStore> base, ChecksumRecord record) {
  return std::make_unique<CheckedKvStore>(std::move(base), std::move(record));
}

Result<std::unique_ptr<KvStore>> OpenCheckedKvStore(std::string_view url) {
  ASSIGN_OR_RETURN(auto store, OpenKvStore(url));
  ASSIGN_OR_RETURN(auto record, ReadChecksumRecord(store.get()));
  if (!record) return store;
  return NewCheckedKvStore(std::move(store), std::move(*record));
}

}  // namespace jigsaw

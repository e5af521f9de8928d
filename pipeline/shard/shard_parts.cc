#include "pipeline/shard/shard_parts.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "base/version.h"
#include "pipeline/shard/shard_store.h"
#include "storage/kvstore/checksum_record.h"
#include "storage/zarr/array.h"
#include "storage/zarr/cf.h"
#include "storage/zarr/group.h"
#include "storage/zarr/store_ops.h"

namespace jigsaw {

using json = nlohmann::json;

Result<ShardPart> ParseShardPart(std::string_view text) {
  const size_t slash = text.find('/');
  long long i = 0, n = 0;
  char tail = 0;
  if (slash == std::string_view::npos ||
      std::sscanf(std::string(text).c_str(), "%lld/%lld%c", &i, &n, &tail) != 2 || n < 1) {
    return InvalidArgumentError("--part " + std::string(text) + " is not like 2/8 (part 2 of 8)");
  }
  if (i < 1 || i > n) {
    return InvalidArgumentError("--part " + std::string(text) + ": part " + std::to_string(i) + " of " +
                                std::to_string(n) + " does not exist (parts are numbered 1 to " + std::to_string(n) +
                                ")");
  }
  return ShardPart{i - 1, n};
}

std::pair<int64_t, int64_t> PartBlocks(int64_t blocks, const ShardPart& part) {
  return {part.index * blocks / part.count, (part.index + 1) * blocks / part.count};
}

namespace {

std::string PartStem(int64_t index, int64_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%spart-%04lld-of-%04lld", kPartsPrefix, static_cast<long long>(index + 1),
                static_cast<long long>(count));
  return buf;
}

double Now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

Result<json> ReadJson(KvStore* store, const std::string& key) {
  ASSIGN_OR_RETURN(ReadResult r, store->Read(key));
  if (r.missing) return NotFoundError(store->url() + "/" + key + " is missing");
  json j = json::parse(r.value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return DataLossError(store->url() + "/" + key + " is not a JSON object");
  return j;
}

class RenewedClaim final : public PartClaim {
 public:
  RenewedClaim(KvStore* store, std::string key, json claim, double lease)
      : store_(store), key_(std::move(key)), claim_(std::move(claim)), lease_(lease) {
    renew_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!stop_) {
        if (cv_.wait_for(lock, std::chrono::duration<double>(lease_ / 4), [this] { return stop_; })) break;
        claim_["expires"] = Now() + lease_;
        // A failed renewal is retried at the next tick; the lease covers three of them.
        (void)store_->Write(key_, claim_.dump(), {});
      }
    });
  }
  ~RenewedClaim() override { (void)Release(); }

  Status Release() override {
    {
      std::lock_guard lock(mu_);
      if (stop_) return OkStatus();
      stop_ = true;
    }
    cv_.notify_all();
    renew_.join();
    return store_->Delete(key_);
  }

 private:
  KvStore* store_;
  std::string key_;
  json claim_;
  double lease_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread renew_;
};

}  // namespace

std::string PartManifestKey(const ShardPart& part) { return PartStem(part.index, part.count) + ".json"; }
std::string PartClaimKey(const ShardPart& part) { return PartStem(part.index, part.count) + ".claim"; }

Result<std::unique_ptr<PartClaim>> ClaimPart(KvStore* store, const ShardPart& part, const std::string& fingerprint,
                                             double lease_seconds) {
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  std::random_device rd;
  const std::string token = std::to_string(rd()) + std::to_string(rd());
  json claim = {{"fingerprint", fingerprint}, {"part", part.ToString()}, {"host", host},
                {"pid", static_cast<int64_t>(getpid())}, {"token", token}, {"expires", Now() + lease_seconds}};
  const std::string key = PartClaimKey(part);
  Status made = store->Write(key, claim.dump(), WriteOptions{.if_absent = true});
  if (!made.ok() && !IsAlreadyExists(made)) return made;
  if (!made.ok()) {
    auto held = ReadJson(store, key);
    if (!held.ok() && held.status().code() != StatusCode::kNotFound) return held.status();
    // An object store may answer a retried conditional write with 412 although the first one landed: ours.
    const bool ours = held.ok() && held->value("token", "") == token;
    // A claim of this host whose process is gone (killed, the node's job cancelled): no need to wait out
    // its lease.
    const bool gone = held.ok() && held->value("host", "") == host &&
                      kill(static_cast<pid_t>(held->value("pid", int64_t{0})), 0) != 0 && errno == ESRCH;
    if (held.ok() && !ours && !gone && held->value("expires", 0.0) > Now()) {
      return FailedPreconditionError(
          "part " + part.ToString() + " is being written by " + held->value("host", "?") + " (pid " +
          std::to_string(held->value("pid", int64_t{0})) + "), whose claim " + store->url() + "/" + key +
          " it renews while it runs (lease until " +
          FormatIsoTime(static_cast<int64_t>(held->value("expires", 0.0))) +
          "); a second process on one part is refused. If that process is gone, rerun after its lease lapses (at "
          "most " + std::to_string(static_cast<int>(lease_seconds)) + " s)");
    }
    if (!ours) RETURN_IF_ERROR(store->Write(key, claim.dump(), {}));  // a lapsed claim: taken over
  }
  return std::unique_ptr<PartClaim>(new RenewedClaim(store, key, std::move(claim), lease_seconds));
}

json MomentsToJson(const PartMoments& m) {
  auto column = [](const std::vector<Moments>& v) {
    json n = json::array(), mean = json::array(), m2 = json::array(), lo = json::array(), hi = json::array();
    for (const auto& x : v) {
      n.push_back(x.n);
      mean.push_back(x.mean);
      m2.push_back(x.m2);
      lo.push_back(x.n ? json(x.min) : json(nullptr));  // +-inf of an empty piece: null in JSON
      hi.push_back(x.n ? json(x.max) : json(nullptr));
    }
    return json{{"n", n}, {"mean", mean}, {"m2", m2}, {"min", lo}, {"max", hi}};
  };
  return {{"value", column(m.value)}, {"tendency", column(m.tendency)}};
}

Result<PartMoments> MomentsFromJson(const json& j, size_t channels) {
  auto column = [&](const char* name, std::vector<Moments>* out) -> Status {
    if (!j.contains(name)) return DataLossError(std::string("no \"") + name + "\" moments");
    const json& c = j[name];
    for (const char* k : {"n", "mean", "m2", "min", "max"})
      if (!c.contains(k) || !c[k].is_array() || c[k].size() != channels)
        return DataLossError(std::string(name) + "." + k + " does not hold " + std::to_string(channels) + " channels");
    out->resize(channels);
    for (size_t i = 0; i < channels; ++i) {
      Moments& x = (*out)[i];
      x.n = c["n"][i].get<double>();
      x.mean = c["mean"][i].get<double>();
      x.m2 = c["m2"][i].get<double>();
      x.min = c["min"][i].is_null() ? INFINITY : c["min"][i].get<double>();
      x.max = c["max"][i].is_null() ? -INFINITY : c["max"][i].get<double>();
    }
    return OkStatus();
  };
  PartMoments m;
  RETURN_IF_ERROR(column("value", &m.value));
  RETURN_IF_ERROR(column("tendency", &m.tendency));
  return m;
}

json ShardStatistics(const PartMoments& m) {
  json stats;
  std::vector<double> cols[6];
  for (size_t c = 0; c < m.value.size(); ++c) {
    const Moments& v = m.value[c];
    const Moments& d = m.tendency[c];
    cols[0].push_back(v.n ? v.mean : NAN);
    cols[1].push_back(v.population_std());
    cols[2].push_back(v.n ? v.min : NAN);
    cols[3].push_back(v.n ? v.max : NAN);
    cols[4].push_back(d.n ? d.mean : NAN);
    cols[5].push_back(d.population_std());
  }
  for (int i = 0; i < 6; ++i) stats[kShardStatNames[i]] = cols[i];
  return stats;
}

std::vector<int64_t> PartsState::missing() const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < count; ++i)
    if (!manifests.count(i)) out.push_back(i);
  return out;
}

Result<PartsState> ReadPartsState(KvStore* store) {
  ASSIGN_OR_RETURN(auto keys, store->List(kPartsPrefix));
  PartsState state;
  for (const auto& e : keys) {
    long long i = 0, n = 0;
    char kind[16] = {};
    const std::string name = e.key.substr(std::string(kPartsPrefix).size());
    if (std::sscanf(name.c_str(), "part-%lld-of-%lld.%15s", &i, &n, kind) != 3 || i < 1 || i > n) continue;
    if (state.count && state.count != n) {
      return FailedPreconditionError(store->url() + " holds parts of a split into " + std::to_string(state.count) +
                                     " and of one into " + std::to_string(n) +
                                     " (" + kPartsPrefix + "); run every part with one --part i/N");
    }
    state.count = n;
    if (std::string(kind) == "json") {
      ASSIGN_OR_RETURN(state.manifests[i - 1], ReadJson(store, e.key));
    } else if (std::string(kind) == "claim") {
      auto claim = ReadJson(store, e.key);  // gone in between: released
      if (claim.ok()) state.claims[i - 1] = *claim;
    }
  }
  return state;
}

std::vector<std::string> DescribeMissingParts(const json& plan, const PartsState& state) {
  std::vector<std::string> out;
  const int64_t T = plan.value("num_times", int64_t{0}), K = std::max<int64_t>(1, plan.value("time_per_shard", 1));
  const int64_t step = plan.value("step_seconds", int64_t{0});
  auto start = ParseIsoTime(plan.value("start", ""));
  const int64_t blocks = (T + K - 1) / K;
  for (int64_t i : state.missing()) {
    auto [b0, b1] = PartBlocks(blocks, ShardPart{i, state.count});
    std::string line = "part " + std::to_string(i + 1) + " of " + std::to_string(state.count);
    if (start.ok() && b1 > b0) {
      line += " (" + FormatIsoTime(*start + b0 * K * step) + " to " +
              FormatIsoTime(*start + (std::min(T, b1 * K) - 1) * step) + ")";
    }
    if (state.claims.count(i)) line += ", claimed by " + state.claims.at(i).value("host", "?") + " (running, or killed)";
    out.push_back(line);
  }
  return out;
}

Status FinishShardParts(KvStore* destination, std::ostream& log) {
  RecordingKvStore recording(destination);
  KvStore* const out = &recording;
  ASSIGN_OR_RETURN(NodeMetadata root, ReadNodeMetadata(out, ""));
  json attrs = root.attributes;
  if (!attrs.contains("jigsaw") || attrs["jigsaw"].value("store", "") != "jigsaw-shard")
    return FailedPreconditionError(out->url() + " is not a store jigsaw-shard writes");
  json& jig = attrs["jigsaw"];
  if (jig.value("complete", false)) {
    log << out->url() << " is already complete; nothing to finish\n";
    return OkStatus();
  }
  const json plan = jig.value("plan", json::object());
  const std::string fingerprint = jig.value("plan_fingerprint", "");
  ASSIGN_OR_RETURN(PartsState state, ReadPartsState(out));
  if (state.count == 0) {
    return FailedPreconditionError(out->url() + " is not being written in parts (no " + std::string(kPartsPrefix) +
                                   "); rerun jigsaw-shard run to finish it");
  }
  if (auto missing = DescribeMissingParts(plan, state); !missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += "\n  " + m;
    return FailedPreconditionError(out->url() + ": " + std::to_string(missing.size()) + " of " +
                                   std::to_string(state.count) + " parts are not done:" + list +
                                   "\nrun them (jigsaw-shard run ... --part i/" + std::to_string(state.count) +
                                   "), then finish");
  }
  // Merged in part order: the same sums whichever part ended first.
  const size_t C = plan.value("channels", json::array()).size();
  PartMoments total{std::vector<Moments>(C), std::vector<Moments>(C)};
  ChecksumRecord objects;
  for (const auto& [i, manifest] : state.manifests) {
    const std::string which = out->url() + "/" + PartManifestKey(ShardPart{i, state.count});
    if (manifest.value("fingerprint", "") != fingerprint)
      return FailedPreconditionError(which + " is of another plan (fingerprint " + manifest.value("fingerprint", "") +
                                     ", the store's " + fingerprint + ")");
    auto m = MomentsFromJson(manifest.value("moments", json::object()), C);
    if (!m.ok()) return m.status().Annotate(which);
    for (size_t c = 0; c < C; ++c) {
      total.value[c].Add(m->value[c]);
      total.tendency[c].Add(m->tendency[c]);
    }
    ASSIGN_OR_RETURN(ChecksumRecord part_objects,
                     DecodeChecksumRecord(manifest.value("objects", json::object()).dump(), which));
    objects.insert(part_objects.begin(), part_objects.end());
  }
  recording.Adopt(objects);  // before this step's own writes, which replace the entries of what they rewrite
  // Every planned chunk is there.
  ASSIGN_OR_RETURN(auto data, Array::Open(out, "data"));
  std::set<std::string> present;
  ASSIGN_OR_RETURN(auto keys, out->List("data/"));
  for (const auto& e : keys) present.insert(e.key);
  const auto grid = data->metadata().grid();
  std::vector<int64_t> index(grid.size(), 0);
  int64_t absent = 0;
  std::string first_absent;
  for (;;) {
    const std::string key = data->ChunkKey(index);
    if (!present.count(key) && absent++ == 0) first_absent = key;
    size_t d = grid.size();
    while (d > 0 && ++index[d - 1] == grid[d - 1]) index[--d] = 0;
    if (d == 0) break;
  }
  if (absent) {
    return DataLossError(out->url() + ": every part is done but " + std::to_string(absent) +
                         " planned chunks are missing, the first " + first_absent +
                         " (deleted since?); rerun the part that holds it");
  }
  const int format = root.zarr_format;
  json result = ShardStatistics(total);
  for (const char* name : kShardStatNames)
    RETURN_IF_ERROR(WriteStatisticsArray(out, format, name, "channel", result[name].get<std::vector<double>>()));
  const json window = plan.value("statistics", json::array({"", ""}));
  jig["statistics"] = {{"start", window[0]},
                       {"end", window[1]},
                       {"excluded_missing_times", plan.value("missing_times", json::array()).size()},
                       {"tendency", "x(t + step) - x(t) over consecutive selected times"},
                       {"parts", state.count}};
  jig["complete"] = true;
  jig["written_by"] = std::string("jigsaw ") + Version();
  RETURN_IF_ERROR(WriteGroup(out, "", format, attrs));
  RETURN_IF_ERROR(WriteConsolidated(out, format));
  RETURN_IF_ERROR(recording.WriteRecord());
  log << out->url() << ": " << state.count << " parts merged; statistics, checksum record and completion mark written\n";
  return OkStatus();
}

}  // namespace jigsaw

#include "storage/zarr/group.h"

#include "base/version.h"

#include <set>

namespace jigsaw {
std::optional<std::string> NodePathOf(const std::string& key) {
  for (std::string_view name : {"zarr.json", ".zarray", ".zgroup"}) {
    if (key == name) return std::string();
    if (key.size() > name.size() && key.ends_with(name) && key[key.size() - name.size() - 1] == '/') {
      return key.substr(0, key.size() - name.size() - 1);
    }
  }
  return std::nullopt;
}

namespace {

// The node paths named by consolidated metadata (v2 .zmetadata, v3 consolidated_metadata in the root
// zarr.json), for stores that cannot list (HTTP); empty when there is none.
Result<std::set<std::string>> ConsolidatedPaths(KvStore* store) {
  std::set<std::string> paths;
  ASSIGN_OR_RETURN(ReadResult v2, store->Read(".zmetadata"));
  if (!v2.missing) {
    ASSIGN_OR_RETURN(json j, ParseStoredJson(v2.value, JoinKey(store->url(), ".zmetadata")));
    if (j.contains("metadata") && j["metadata"].is_object()) {
      for (const auto& [key, value] : j["metadata"].items())
        if (auto p = NodePathOf(key)) paths.insert(*p);
    }
    return paths;
  }
  ASSIGN_OR_RETURN(ReadResult v3, store->Read("zarr.json"));
  if (v3.missing) return paths;
  ASSIGN_OR_RETURN(json j, ParseStoredJson(v3.value, JoinKey(store->url(), "zarr.json")));
  const json* c = j.contains("consolidated_metadata") ? &j["consolidated_metadata"] : nullptr;
  if (c && c->is_object() && c->contains("metadata") && (*c)["metadata"].is_object()) {
    paths.insert("");
    for (const auto& [key, value] : (*c)["metadata"].items()) paths.insert(key);
  }
  return paths;
}

}  // namespace

Result<std::vector<Node>> ListNodes(KvStore* store) {
  auto keys = store->List("");
  std::set<std::string> paths;
  if (!keys.ok() && keys.status().code() == StatusCode::kUnimplemented) {
    ASSIGN_OR_RETURN(paths, ConsolidatedPaths(store));
    if (paths.empty()) {
      return Status(keys.status().code(),
                    keys.status().message() + "; nor has it consolidated metadata to read instead");
    }
  } else {
    RETURN_IF_ERROR(keys.status());
    for (const auto& e : *keys)
      if (auto p = NodePathOf(e.key)) paths.insert(*p);
  }
  // A store whose root holds no metadata is still browsable when nodes sit below it.
  if (paths.empty()) return NotFoundError("no Zarr metadata in " + store->url());
  std::vector<Node> nodes;
  for (const auto& p : paths) {
    ASSIGN_OR_RETURN(NodeMetadata m, ReadNodeMetadata(store, p));
    nodes.push_back({p, std::move(m)});
  }
  return nodes;
}

Status WriteGroup(KvStore* store, const std::string& path, int zarr_format, const json& attributes) {
  if (zarr_format == 3) {
    json j = {{"zarr_format", 3}, {"node_type", "group"}, {"attributes", attributes}};
    return store->Write(JoinKey(path, "zarr.json"), j.dump(2));
  }
  RETURN_IF_ERROR(store->Write(JoinKey(path, ".zgroup"), json{{"zarr_format", 2}}.dump(2)));
  if (attributes.empty()) return store->Delete(JoinKey(path, ".zattrs"));
  return store->Write(JoinKey(path, ".zattrs"), attributes.dump(2));
}

Result<json> BuildConsolidated(KvStore* store, int zarr_format) {
  ASSIGN_OR_RETURN(auto nodes, ListNodes(store));
  if (zarr_format == 2) {
    json meta = json::object();
    for (const auto& n : nodes) {
      if (n.meta.zarr_format != 2) continue;
      for (std::string_view name : {".zgroup", ".zarray", ".zattrs"}) {
        std::string key = JoinKey(n.path, name);
        ASSIGN_OR_RETURN(ReadResult r, store->Read(key));
        if (r.missing) continue;
        ASSIGN_OR_RETURN(meta[key], ParseStoredJson(r.value, JoinKey(store->url(), key)));
      }
    }
    return json{{"zarr_consolidated_format", 1}, {"metadata", meta}};
  }
  json meta = json::object();
  for (const auto& n : nodes) {
    if (n.path.empty() || n.meta.zarr_format != 3) continue;
    std::string key = JoinKey(n.path, "zarr.json");
    ASSIGN_OR_RETURN(ReadResult r, store->Read(key));
    ASSIGN_OR_RETURN(json j, ParseStoredJson(r.value, JoinKey(store->url(), key)));
    j.erase("consolidated_metadata");
    meta[n.path] = j;
  }
  return json{{"kind", "inline"}, {"must_understand", false}, {"metadata", meta}};
}

Status WriteConsolidated(KvStore* store, int zarr_format) {
  ASSIGN_OR_RETURN(json c, BuildConsolidated(store, zarr_format));
  if (zarr_format == 2) return store->Write(".zmetadata", c.dump(2));
  ASSIGN_OR_RETURN(ReadResult r, store->Read("zarr.json"));
  if (r.missing) return FailedPreconditionError(store->url() + ": no root group to consolidate into");
  ASSIGN_OR_RETURN(json root, ParseStoredJson(r.value, store->url() + "/zarr.json"));
  root["consolidated_metadata"] = c;
  return store->Write("zarr.json", root.dump(2));
}

json JigsawMark(const std::string& store, bool complete, const json& identity) {
  return {{"store", store},
          {"complete", complete},
          {"written_by", std::string("jigsaw ") + Version()},
          {"identity", identity}};
}

Status RequireEmptyOrOurs(KvStore* store, const json& identity, const std::string& where, const std::string& what) {
  auto root = ReadNodeMetadata(store, "");
  if (root.ok() && root->attributes.contains("jigsaw") && root->attributes["jigsaw"].is_object() &&
      root->attributes["jigsaw"].value("identity", json()) == identity)
    return OkStatus();
  Status empty = RequireEmpty(store);
  if (empty.ok()) return OkStatus();
  return FailedPreconditionError(where + " holds something that is not " + what + " (" + empty.message() +
                                 "): remove it or write elsewhere");
}

}  // namespace jigsaw

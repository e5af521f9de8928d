// Zarr groups: attributes, the tree of nodes under a root, and consolidated metadata
// (v2 ".zmetadata"; v3 inline "consolidated_metadata" in the root zarr.json, as zarr-python 3 writes it).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "storage/kvstore/kvstore.h"
#include "storage/zarr/array.h"

namespace jigsaw {

struct Node {
  std::string path;  // "" for the root, "a/b" below it
  NodeMetadata meta;
};

// The node path of a metadata key ("a/b/zarr.json" -> "a/b", ".zgroup" -> ""), or nullopt when the key is not
// a zarr.json, .zarray or .zgroup.
std::optional<std::string> NodePathOf(const std::string& key);

// Every group and array under the root of `store`, the root first, then in path order. Found by listing
// metadata keys (consolidated metadata is not trusted for this; see VerifyStore for its check).
Result<std::vector<Node>> ListNodes(KvStore* store);

// Writes group metadata (zarr.json or .zgroup + .zattrs) at `path`.
Status WriteGroup(KvStore* store, const std::string& path, int zarr_format, const json& attributes);

// Whether a tool may write its store into `store`: empty, or holding a write of the same identity (its
// root's attributes "jigsaw" -> "identity"), which it then finishes. Otherwise kFailedPrecondition naming
// `where` and `what` ("--out f.zarr", "this forecast"): never over a store the tool did not make.
Status RequireEmptyOrOurs(KvStore* store, const json& identity, const std::string& where, const std::string& what);

// The "jigsaw" attribute of a store a tool makes and finishes later: which tool (`store`), whether it is
// `complete`, the version that wrote it, and its `identity` (what RequireEmptyOrOurs compares).
json JigsawMark(const std::string& store, bool complete, const json& identity);

// The consolidated metadata document for the nodes of `store` as they are now.
Result<json> BuildConsolidated(KvStore* store, int zarr_format);
// Writes it: v2 .zmetadata, or v3 the root zarr.json with consolidated_metadata.
Status WriteConsolidated(KvStore* store, int zarr_format);

}  // namespace jigsaw

// Read-only kvstores over HTTP(S): a Zarr store published by a web server or an object store's public
// HTTPS endpoint. Keys are appended to the base URL ("https://host/x.zarr" + "/" + "zarr.json").
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "storage/kvstore/http/http_client.h"
#include "storage/kvstore/kvstore.h"

namespace jigsaw {

// Opens "http://..." or "https://...". Read() maps a 404 to a missing key; List(), Write() and
// Delete() are refused (plain HTTP has no listing; use s3:// or gs:// for that).
Result<std::unique_ptr<KvStore>> NewHttpKvStore(std::string_view url);

// The ranged-read logic the HTTP and S3 stores share. `send(method, headers, body)` performs one request
// ("GET" with an optional Range header, or "HEAD"). Applies `range` as the kvstore contract says: an
// empty range is answered from the object's size (HTTP cannot ask for zero bytes), 416 becomes
// kOutOfRange (or "" at the very end), a server ignoring Range is handled, and a 206 body that is not
// exactly the bytes asked for is kDataLoss. A 404 returns kNotFound with the error body in *value.
using SendFn = std::function<Result<HttpResponse>(const std::string& method, HttpHeaders headers, std::string* body)>;
Status ReadObjectRange(const SendFn& send, ByteRange range, std::string* value);

}  // namespace jigsaw

// What every jigsaw tool shares: worker threads and object-store flags, and how a failure is reported.
// The object-store flags set the environment variables the S3/HTTP backends read
// (storage/kvstore/s3/s3_kvstore.h, storage/kvstore/http/http_client.h), so a flag and its variable always
// mean the same thing.
// Credentials are taken from the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN): a command line is visible to every user of the machine.
#pragma once

#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "base/status.h"
#include "base/version.h"

namespace jigsaw::cli {

// A flag's value must be a number no smaller than `lo` (CLI11's own range check prints its whole double range).
inline CLI::Validator AtLeast(double lo) {
  return CLI::Validator(
      [lo](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0') return "\"" + text + "\" is not a number";
        if (v < lo) return text + " is below " + CLI::detail::to_string(lo);
        return "";
      },
      "NUMBER >= " + CLI::detail::to_string(lo));
}

struct CommonFlags {
  int threads = 0;
  std::string s3_endpoint, s3_region;
  bool s3_anonymous = false;
  int max_in_flight = 0, retries = -1;
};

inline void AddCommonFlags(CLI::App& app, CommonFlags* f) {
  app.set_version_flag("--version", std::string("jigsaw ") + Version(), "the version and the commit it was built from");
  app.add_option("--threads", f->threads,
                 "limit on worker threads, I/O threads for object stores included (default: no limit)")
      ->check(AtLeast(1));
  app.add_option("--s3-endpoint", f->s3_endpoint,
                 "S3 endpoint for s3:// URLs, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL, else AWS); "
                 "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN")
      ->group("Object stores");
  app.add_option("--s3-region", f->s3_region, "S3 region (default: $AWS_REGION, else us-east-1)")
      ->group("Object stores");
  app.add_flag("--s3-anonymous", f->s3_anonymous, "unsigned S3 requests, for public buckets")->group("Object stores");
  app.add_option("--max-in-flight", f->max_in_flight,
                 "HTTP requests in flight at once (default 32, $JIGSAW_HTTP_MAX_IN_FLIGHT)")
      ->check(CLI::Range(1, 4096))
      ->group("Object stores");
  app.add_option("--retries", f->retries,
                 "retries of a failed HTTP request, with backoff (default 8, $JIGSAW_HTTP_RETRIES)")
      ->check(CLI::Range(0, 100))
      ->group("Object stores");
}

// Applies the flags; keep the result alive for the run (it holds the thread limit).
inline std::unique_ptr<tbb::global_control> ApplyCommonFlags(const CommonFlags& f) {
  if (!f.s3_endpoint.empty()) ::setenv("AWS_ENDPOINT_URL", f.s3_endpoint.c_str(), 1);
  if (!f.s3_region.empty()) ::setenv("AWS_REGION", f.s3_region.c_str(), 1);
  if (f.s3_anonymous) ::setenv("JIGSAW_S3_ANONYMOUS", "1", 1);
  if (f.max_in_flight > 0) ::setenv("JIGSAW_HTTP_MAX_IN_FLIGHT", std::to_string(f.max_in_flight).c_str(), 1);
  if (f.retries >= 0) ::setenv("JIGSAW_HTTP_RETRIES", std::to_string(f.retries).c_str(), 1);
  if (f.threads <= 0) return nullptr;
  return std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, f.threads);
}

// Reports a failed command on stderr as "tool: message" and returns its exit code: 2 for bad input (an
// invalid argument, something not found), 1 for everything else.
// CLI11_PARSE, but a malformed command line exits 2 as the README promises (CLI11's own codes are 100+);
// --help still exits 0.
#define JIGSAW_CLI_PARSE(app, argc, argv) \
  do {                                    \
    try {                                 \
      (app).parse((argc), (argv));        \
    } catch (const CLI::ParseError& e) {  \
      return (app).exit(e) == 0 ? 0 : 2;  \
    }                                     \
  } while (0)

inline int Fail(const char* tool, const Status& s, bool print = true) {
  if (print) std::cerr << tool << ": " << s.message() << "\n";
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound ? 2 : 1;
}

}  // namespace jigsaw::cli

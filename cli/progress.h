// A progress bar on stderr with rate and ETA; silent when stderr is not a terminal.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace jigsaw::cli {

class ProgressBar {
 public:
  // `bytes`: show units as bytes (MB/s) rather than items (/s).
  ProgressBar(std::string label, bool bytes) : label_(std::move(label)), bytes_(bytes), on_(isatty(2) == 1) {}
  ~ProgressBar() { Finish(); }

  void Update(int64_t done, int64_t total) {
    if (!on_) return;
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double frac = total > 0 ? static_cast<double>(done) / total : 1.0;
    double rate = secs > 0 ? done / secs : 0;
    double eta = rate > 0 ? (total - done) / rate : 0;
    const int width = 30;
    int filled = static_cast<int>(frac * width);
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    if (bytes_) {
      std::fprintf(stderr, "\r%s [%s] %5.1f%%  %.1f MB/s  ETA %.0fs ", label_.c_str(), bar.c_str(), 100 * frac,
                   rate / 1e6, eta);
    } else {
      std::fprintf(stderr, "\r%s [%s] %5.1f%%  %.0f/s  ETA %.0fs ", label_.c_str(), bar.c_str(), 100 * frac, rate, eta);
    }
    std::fflush(stderr);
    drawn_ = true;
  }

  void Finish() {
    if (on_ && drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  std::string label_;
  bool bytes_, on_, drawn_ = false;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

}  // namespace jigsaw::cli

// Files under a root directory; a key is a relative path. Writes are atomic: the value goes to a temporary
// file in the key's directory (named "<key>.__jigsaw_tmp.<pid>.<n>", never listed) and is renamed over
// the key. With WriteOptions::sync the file and then its directory are fsync'ed. List() deletes the
// temporary files of writers that died, and the empty directories it walks through.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "storage/kvstore/kvstore.h"

namespace jigsaw {
namespace {

constexpr std::string_view kTempMarker = ".__jigsaw_tmp.";

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
    return *this;
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return OkStatus();
  for (int attempt = 0;; ++attempt) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return OkStatus();
      return FailedPreconditionError("not a directory: " + dir);
    }
    size_t slash = dir.rfind('/');
    if (slash != std::string::npos && slash > 0) RETURN_IF_ERROR(MakeDirs(dir.substr(0, slash)));
    if (::mkdir(dir.c_str(), 0777) == 0 || errno == EEXIST) return OkStatus();
    // ENOENT: another process (writers of one store side by side) removed the parent made above when it
    // emptied it; make the chain again.
    if (errno != ENOENT || attempt == 8) return ErrnoToStatus(errno, "mkdir " + dir);
  }
}

Status FsyncPath(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoToStatus(errno, "open " + path);
  if (::fsync(fd.get()) != 0) return ErrnoToStatus(errno, "fsync " + path);
  return OkStatus();
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

// A value opened for reading, with `range` resolved against its size; fd < 0 when the key is missing (no
// such file, or a directory: keys name files).
struct Opened {
  Fd fd{-1};
  std::pair<int64_t, int64_t> span;
};

Result<Opened> OpenValue(const std::string& path, ByteRange range) {
  Opened o;
  o.fd = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (o.fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return o;
    return ErrnoToStatus(errno, "open " + path);
  }
  struct stat st;
  if (::fstat(o.fd.get(), &st) != 0) return ErrnoToStatus(errno, "stat " + path);
  if (S_ISDIR(st.st_mode)) return Opened{};
  auto span = ResolveByteRange(range, st.st_size);
  if (!span.ok()) return span.status().Annotate(path);
  o.span = *span;
  return o;
}

// The bytes go straight to the temporary file; Commit() fsyncs (with sync), renames it over the key and
// fsyncs the directory. Dropped without Commit(), the temporary file is removed. With options.direct (where
// the file takes O_DIRECT), the bytes gather in an aligned staging buffer written whenever it fills; Commit() writes
// the tail padded to whole blocks and truncates the file back to its length.
class FileWriter final : public KvWriter {
 public:
  FileWriter(Fd fd, std::string tmp, std::string path, std::string dir, WriteOptions options)
      : fd_(std::move(fd)), tmp_(std::move(tmp)), path_(std::move(path)), dir_(std::move(dir)), options_(options) {
    if (!options.direct) return;
    // Past the page cache where the file system allows it (not tmpfs, say): else as any other write.
    stage_.reset(static_cast<char*>(std::aligned_alloc(kDirectAlign, kStageBytes)));
    if (stage_ && ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_DIRECT) != 0) stage_.reset();
  }
  ~FileWriter() override {
    if (!committed_) ::unlink(tmp_.c_str());
  }

  Status Append(std::string_view bytes) override {
    if (committed_) return FailedPreconditionError("append to " + path_ + " after commit");
    if (!stage_) return WriteAll(fd_.get(), bytes, tmp_);
    while (!bytes.empty()) {
      const size_t n = std::min(bytes.size(), kStageBytes - staged_);
      std::memcpy(stage_.get() + staged_, bytes.data(), n);
      staged_ += n;
      bytes.remove_prefix(n);
      if (staged_ == kStageBytes) RETURN_IF_ERROR(FlushStage(kStageBytes));
    }
    return OkStatus();
  }

  Status Commit() override {
    if (committed_) return FailedPreconditionError(path_ + " committed twice");
    if (stage_ && staged_ > 0) {
      const size_t length = static_cast<size_t>(offset_) + staged_;
      const size_t padded = (staged_ + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
      std::memset(stage_.get() + staged_, 0, padded - staged_);
      RETURN_IF_ERROR(FlushStage(padded));
      if (::ftruncate(fd_.get(), static_cast<off_t>(length)) != 0) return ErrnoToStatus(errno, "truncate " + tmp_);
    }
    if (options_.sync && ::fsync(fd_.get()) != 0) return ErrnoToStatus(errno, "fsync " + tmp_);
    if (::close(fd_.release()) != 0) return ErrnoToStatus(errno, "close " + tmp_);
    if (options_.if_absent) {
      // link(2) fails when the name exists: the one atomic create-if-absent a file system offers.
      const int linked = ::link(tmp_.c_str(), path_.c_str());
      const int link_errno = errno;
      ::unlink(tmp_.c_str());
      if (linked != 0 && link_errno == EEXIST) return FailedPreconditionError(path_ + " already exists");
      if (linked != 0) return ErrnoToStatus(link_errno, "link to " + path_);
    } else if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return ErrnoToStatus(errno, "rename to " + path_);
    }
    committed_ = true;
    if (options_.sync) return FsyncPath(dir_);
    return OkStatus();
  }

  static constexpr size_t kDirectAlign = 4096, kStageBytes = size_t{8} << 20;

 private:
  Status FlushStage(size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::pwrite(fd_.get(), stage_.get() + done, n - done, offset_ + static_cast<off_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoToStatus(errno, "write " + tmp_);
      done += static_cast<size_t>(w);
    }
    offset_ += static_cast<off_t>(n);
    staged_ = 0;
    return OkStatus();
  }

  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  Fd fd_;
  const std::string tmp_, path_, dir_;
  const WriteOptions options_;
  std::unique_ptr<char, Free> stage_;  // set: direct writes
  size_t staged_ = 0;
  off_t offset_ = 0;
  bool committed_ = false;
};

class FileKvStore final : public KvStore {
 public:
  explicit FileKvStore(std::string root) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  }

  Result<ReadResult> Read(std::string_view key, ByteRange range) override {
    return ReadThroughReadInto(this, key, range);
  }

  Result<bool> ReadInto(std::string_view key, ByteRange range, std::string* value) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::string path = PathOf(key);
    ASSIGN_OR_RETURN(Opened file, OpenValue(path, range));
    if (file.fd.get() < 0) {
      value->clear();
      return false;
    }
    Fd& fd = file.fd;
    const auto span = file.span;
    Status status;
    // No zero-fill: every byte is overwritten by pread, or the value is cleared on failure. The size is
    // taken from `n` of our own, not the callback's argument: libstdc++ 12 passes the grown capacity there.
    const size_t n = static_cast<size_t>(span.second - span.first);
    value->resize_and_overwrite(n, [&](char* p, size_t) {
      size_t done = 0;
      while (done < n) {
        ssize_t got = ::pread(fd.get(), p + done, n - done, span.first + static_cast<off_t>(done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
          status = ErrnoToStatus(errno, "read " + path);
          return size_t{0};
        }
        if (got == 0) {
          status = DataLossError("file shrank while reading: " + path);
          return size_t{0};
        }
        done += static_cast<size_t>(got);
      }
      return n;
    });
    RETURN_IF_ERROR(status);
    return true;
  }

  Result<std::unique_ptr<MappedBytes>> Map(std::string_view key, ByteRange range) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::string path = PathOf(key);
    ASSIGN_OR_RETURN(Opened file, OpenValue(path, range));
    if (file.fd.get() < 0) return std::unique_ptr<MappedBytes>();  // missing: the caller reads, and says so
    const auto span = file.span;
    const Fd& fd = file.fd;
    const int64_t page = ::sysconf(_SC_PAGESIZE);
    const int64_t start = span.first / page * page, length = span.second - start;
    if (span.second == span.first) return std::unique_ptr<MappedBytes>();  // nothing to map: read instead
    void* base = ::mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), start);
    if (base == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + path);
    return std::make_unique<MappedBytes>(base, static_cast<size_t>(length), static_cast<size_t>(span.first - start),
                                         static_cast<size_t>(span.second - span.first));
  }

  Status Write(std::string_view key, std::string_view value, WriteOptions options) override {
    ASSIGN_OR_RETURN(auto writer, OpenWriter(key, options));
    RETURN_IF_ERROR(writer->Append(value));
    return writer->Commit();
  }

  Result<std::unique_ptr<KvWriter>> OpenWriter(std::string_view key, WriteOptions options) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::string path = PathOf(key);
    std::string dir = path.substr(0, path.rfind('/'));
    RETURN_IF_ERROR(MakeDirs(dir));
    static std::atomic<uint64_t> counter{0};
    std::string tmp =
        path + std::string(kTempMarker) + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    for (int retry = 0; fd.get() < 0 && errno == ENOENT && retry < 3; ++retry) {
      // A concurrent Delete() removed the directory it had emptied: make it again.
      RETURN_IF_ERROR(MakeDirs(dir));
      fd = Fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    }
    if (fd.get() < 0) return ErrnoToStatus(errno, "create " + tmp);
    return std::unique_ptr<KvWriter>(
        std::make_unique<FileWriter>(std::move(fd), std::move(tmp), std::move(path), std::move(dir), options));
  }

  Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::string path = PathOf(key);
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return OkStatus();
      return ErrnoToStatus(errno, "delete " + path);
    }
    RemoveEmptyParents(path);
    return OkStatus();
  }

  Result<std::vector<ListEntry>> List(std::string_view prefix) override { return Walk(prefix, SIZE_MAX); }

  Result<bool> IsEmpty() override {
    ASSIGN_OR_RETURN(auto first, Walk("", 1));  // stops at the first value: "/" is not walked whole
    return first.empty();
  }

  // The keys under `prefix`, at most `limit` of them (sorted only when all are wanted). Symbolic links to
  // directories are not followed: a link back up (as /proc/self/root) would never end.
  Result<std::vector<ListEntry>> Walk(std::string_view prefix, size_t limit) {
    // Walk only the deepest directory the prefix names.
    std::string start_dir;
    size_t slash = prefix.rfind('/');
    if (slash != std::string_view::npos) start_dir = std::string(prefix.substr(0, slash));
    std::vector<ListEntry> out;
    Status st;
    std::function<void(const std::string&)> walk = [&](const std::string& rel) {
      std::string dir_path = rel.empty() ? root_ : root_ + "/" + rel;
      DIR* dir = ::opendir(dir_path.c_str());
      if (dir == nullptr) {
        if (errno != ENOENT && errno != ENOTDIR && st.ok()) st = ErrnoToStatus(errno, "list " + dir_path);
        return;
      }
      while (out.size() < limit) {
        struct dirent* e = ::readdir(dir);
        if (e == nullptr) break;
        std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        if (size_t m = name.find(kTempMarker); m != std::string_view::npos) {
          RemoveIfOrphaned(dir_path + "/" + std::string(name), name.substr(m + kTempMarker.size()));
          continue;
        }
        std::string key = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
        struct stat s;
        if (::lstat((root_ + "/" + key).c_str(), &s) != 0) continue;  // removed meanwhile
        const bool link = S_ISLNK(s.st_mode);
        if (link && ::stat((root_ + "/" + key).c_str(), &s) != 0) continue;  // a dangling link
        if (S_ISDIR(s.st_mode) && !link) {
          // Descend only where keys under this directory can match the prefix.
          std::string as_dir = key + "/";
          if (as_dir.starts_with(prefix) || prefix.starts_with(as_dir)) {
            walk(key);
            // Directories exist only for keys: one a writer made and died before filling (killed between its
            // mkdir and its first file) goes, as a deletion's empty parents do. rmdir fails on a non-empty
            // one, and a writer whose directory vanishes makes it again (OpenWriter).
            ::rmdir((root_ + "/" + key).c_str());
          }
        } else if (S_ISREG(s.st_mode) && std::string_view(key).starts_with(prefix)) {
          out.push_back({key, static_cast<int64_t>(s.st_size)});
        }
      }
      ::closedir(dir);
    };
    walk(start_dir);
    if (!st.ok()) return st;
    std::sort(out.begin(), out.end(), [](const ListEntry& a, const ListEntry& b) { return a.key < b.key; });
    return out;
  }

  std::string url() const override { return root_.starts_with("/") ? "file://" + root_ : root_; }

  // A temporary file whose writer process is gone (killed mid-write) is never a value; List() removes it so
  // that a resumed job ends with exactly the files of an uninterrupted one. `suffix` is "<pid>.<n>".
  // Directories exist only for keys: removes the ones a deletion left empty (rmdir fails on a non-empty one).
  void RemoveEmptyParents(const std::string& path) const {
    for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > root_.size();
         slash = path.rfind('/', slash - 1)) {
      if (::rmdir(path.substr(0, slash).c_str()) != 0) break;
    }
  }

  void RemoveIfOrphaned(const std::string& path, std::string_view suffix) const {
    pid_t pid = 0;
    for (char c : suffix.substr(0, suffix.find('.'))) {
      if (c < '0' || c > '9') return;
      pid = pid * 10 + (c - '0');
    }
    if (pid <= 0 || pid == ::getpid()) return;
    if (::kill(pid, 0) == 0 || errno != ESRCH) return;  // alive, or not ours to judge
    if (::unlink(path.c_str()) == 0) RemoveEmptyParents(path);
  }

 private:
  std::string PathOf(std::string_view key) const { return root_ + "/" + std::string(key); }
  std::string root_;
};

}  // namespace

std::unique_ptr<KvStore> NewFileKvStore(std::string root) { return std::make_unique<FileKvStore>(std::move(root)); }

}  // namespace jigsaw

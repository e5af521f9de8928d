#include "jobs/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "storage/codec/crc32c.h"

namespace jigsaw {

namespace {

// TFRecord's masked CRC: rotated right by 15 and offset, so that a CRC of data holding CRCs stays strong.
uint32_t MaskedCrc(std::string_view bytes) {
  const uint32_t crc = Crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

template <typename T>
void PutLittleEndian(std::string* out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // x86 and arm64: little-endian already
  out->append(bytes, sizeof(T));
}

// Protobuf wire format: the key is (field << 3) | wire type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
void PutBytesField(std::string* out, int field, std::string_view bytes) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  PutVarint(out, bytes.size());
  out->append(bytes);
}

std::string EventHeader(double wall_time, int64_t step) {
  std::string e;
  PutVarint(&e, (1 << 3) | 1);  // wall_time
  PutLittleEndian(&e, wall_time);
  PutVarint(&e, (2 << 3) | 0);  // step
  PutVarint(&e, static_cast<uint64_t>(step));
  return e;
}

class FileWriter : public TensorBoardWriter {
 public:
  FileWriter(std::FILE* f, std::string path) : f_(f), path_(std::move(path)) {}
  ~FileWriter() override { std::fclose(f_); }

  Status Write(const std::string& event) {
    std::string record;
    std::string length;
    PutLittleEndian(&length, static_cast<uint64_t>(event.size()));
    record += length;
    PutLittleEndian(&record, MaskedCrc(length));
    record += event;
    PutLittleEndian(&record, MaskedCrc(event));
    if (std::fwrite(record.data(), 1, record.size(), f_) != record.size() || std::fflush(f_) != 0)
      return IoError("cannot write the TensorBoard events " + path_ + ": " + std::strerror(errno));
    return OkStatus();
  }

  Status Scalar(const std::string& tag, int64_t step, double value, double wall_time) override {
    std::string v;
    PutBytesField(&v, 1, tag);
    PutVarint(&v, (2 << 3) | 5);  // simple_value
    PutLittleEndian(&v, static_cast<float>(value));
    std::string summary;
    PutBytesField(&summary, 1, v);
    std::string event = EventHeader(wall_time, step);
    PutBytesField(&event, 5, summary);
    return Write(event);
  }

  std::string path() const override { return path_; }

 private:
  std::FILE* f_;
  std::string path_;
};

}  // namespace

Status TensorBoardWriter::Record(const std::string& section, int64_t step, const nlohmann::json& record,
                                 double wall_time) {
  for (const auto& [key, value] : record.items()) {
    if (key == "step" || key == "time" || key == "kind") continue;
    // "val_loss" in the validation section is val/loss.
    std::string name = key;
    if (name.rfind(section + "_", 0) == 0) name = name.substr(section.size() + 1);
    if (value.is_number()) {
      RETURN_IF_ERROR(Scalar(section + "/" + name, step, value.get<double>(), wall_time));
    } else if (value.is_object()) {
      for (const auto& [sub, x] : value.items())
        if (x.is_number()) RETURN_IF_ERROR(Scalar(section + "/" + name + "/" + sub, step, x.get<double>(), wall_time));
    }
  }
  return OkStatus();
}

Result<std::unique_ptr<TensorBoardWriter>> OpenTensorBoard(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("cannot make the TensorBoard folder " + dir + ": " + ec.message());
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string path = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + host +
                           "." + std::to_string(getpid()) + ".jigsaw";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return IoError("cannot create the TensorBoard events " + path + ": " + std::strerror(errno));
  auto writer = std::make_unique<FileWriter>(f, path);
  std::string first = EventHeader(now, 0);
  PutBytesField(&first, 3, "brain.Event:2");  // file_version: what TensorBoard checks first
  RETURN_IF_ERROR(writer->Write(first));
  return std::unique_ptr<TensorBoardWriter>(std::move(writer));
}

}  // namespace jigsaw

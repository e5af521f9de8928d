// TensorBoard event files: a run followed live in TensorBoard (and imported by W&B and MLflow, which read
// TensorBoard logs). The format is TensorFlow's TFRecord framing of `Event` protocol buffers:
//   record = uint64 length | uint32 masked CRC-32C of the length | Event bytes | uint32 masked CRC-32C of them
// an `Event` holding wall_time (field 1, double), step (2, int64) and either file_version (3, the first
// record: "brain.Event:2") or a Summary (5) of Value{tag (1), simple_value (2, float)}. The few protobuf
// fields are written by hand here: no protobuf dependency for four fields.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace jigsaw {

class TensorBoardWriter {
 public:
  virtual ~TensorBoardWriter() = default;
  // One scalar at a step; written and flushed at once, so that TensorBoard shows it while the run goes on.
  virtual Status Scalar(const std::string& tag, int64_t step, double value, double wall_time) = 0;
  // Every number of a metrics record as a scalar `section/name` (a nested object's as `section/name/key`),
  // but its step and time: a jigsaw-train log record becomes what TensorBoard draws.
  Status Record(const std::string& section, int64_t step, const nlohmann::json& record, double wall_time);
  virtual std::string path() const = 0;
};

// A new event file in `dir` (made if needed): events.out.tfevents.<seconds>.<host>.<pid>.jigsaw, the name
// TensorBoard looks for; each run writes a file of its own beside those of earlier runs.
Result<std::unique_ptr<TensorBoardWriter>> OpenTensorBoard(const std::string& dir);

}  // namespace jigsaw

#include "base/box.h"

#include <algorithm>

namespace jigsaw {

int64_t Box::num_elements() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string JoinShape(std::span<const int64_t> shape, std::string_view sep) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) (s += i ? sep : "") += std::to_string(shape[i]);
  return s;
}

std::string Box::ToString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    int64_t end = 0;  // a user's box may not have one: "origin:+extent" then
    s += std::to_string(origin[i]) + ":" +
         (__builtin_add_overflow(origin[i], shape[i], &end) ? "+" + std::to_string(shape[i]) : std::to_string(end));
  }
  return s + "]";
}

bool BoxWithin(const Box& box, std::span<const int64_t> shape) {
  if (box.origin.size() != shape.size() || box.shape.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d) {
    // origin + extent <= dim, written so that nothing can overflow: origin <= dim, extent <= dim - origin.
    if (box.origin[d] < 0 || box.shape[d] < 0 || box.origin[d] > shape[d] || box.shape[d] > shape[d] - box.origin[d]) {
      return false;
    }
  }
  return true;
}

Box Intersection(const Box& a, const Box& b) {
  Box r;
  for (size_t d = 0; d < a.shape.size(); ++d) {
    const int64_t lo = std::max(a.origin[d], b.origin[d]);
    const int64_t hi = std::min(a.origin[d] + a.shape[d], b.origin[d] + b.shape[d]);
    r.origin.push_back(lo);
    r.shape.push_back(std::max<int64_t>(0, hi - lo));
  }
  return r;
}

bool Overlap(const Box& a, const Box& b) {
  for (size_t d = 0; d < a.shape.size(); ++d)
    if (a.origin[d] + a.shape[d] <= b.origin[d] || b.origin[d] + b.shape[d] <= a.origin[d]) return false;
  return true;
}

}  // namespace jigsaw

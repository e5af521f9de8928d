// Box: a rectangular region of an n-dimensional array (origin and shape per dimension), as arrays, tiles
// and checkpoint reads address their data. Every check here is safe against overflow for any int64_t a
// user gives (an origin near INT64_MAX must be refused, not wrapped round into range).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jigsaw {

struct Box {
  std::vector<int64_t> origin, shape;
  int64_t num_elements() const;
  std::string ToString() const;  // "[0:2, 10:20]"
};

// The extents of a shape joined by `sep`: JoinShape({2, 3}) is "2, 3", JoinShape({2, 3}, "x") "2x3".
std::string JoinShape(std::span<const int64_t> shape, std::string_view sep = ", ");

// True when `box` has the rank of `shape` and lies inside [0, shape) in every dimension (empty extents
// allowed), computed without overflow.
bool BoxWithin(const Box& box, std::span<const int64_t> shape);

// The common part of two boxes of the same rank (a dimension with none has extent 0), and whether there is
// any (a box of extent 0 overlaps nothing).
Box Intersection(const Box& a, const Box& b);
bool Overlap(const Box& a, const Box& b);

}  // namespace jigsaw

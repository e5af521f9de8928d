// CRC-32C (Castagnoli), as used by the Zarr v3 crc32c codec and jigsaw checkpoints.
#pragma once

#include <cstdint>
#include <string_view>

namespace jigsaw {

// Extends `crc` (0 to start) over `data`. Uses the SSE4.2 instruction when the CPU has it.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

// The CRC of A followed by B, from the CRCs of A and of B and the length of B (no pass over the bytes).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

class Status;
// The crc32c codec's check: kDataLoss unless the last 4 bytes of `encoded` are the little-endian CRC-32C of
// the rest. Decoders strip them in place after it (no copy of the payload).
Status CheckCrc32cSuffix(std::string_view encoded);

}  // namespace jigsaw

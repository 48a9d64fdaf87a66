#include "protocols/mqtt/file_store/crc32c.h"

#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HUBLINK_CRC32C_X86 1
#endif

namespace hublink {
namespace mqtt {
namespace crc32c {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // reflected Castagnoli

struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;  // little-endian (x86, arm64 Linux)
}

// Works on the inverted register value.
uint32_t ExtendTable(uint32_t c, const uint8_t* p, size_t n) {
  const Tables& tb = GetTables();
  while (n >= 8) {
    const uint64_t v = Load64(p) ^ c;
    c = tb.t[7][v & 0xff] ^ tb.t[6][(v >> 8) & 0xff] ^ tb.t[5][(v >> 16) & 0xff] ^
        tb.t[4][(v >> 24) & 0xff] ^ tb.t[3][(v >> 32) & 0xff] ^ tb.t[2][(v >> 40) & 0xff] ^
        tb.t[1][(v >> 48) & 0xff] ^ tb.t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ tb.t[0][(c ^ *p++) & 0xff];
  return c;
}

#ifdef HUBLINK_CRC32C_X86
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t c, const uint8_t* p, size_t n) {
  uint64_t c64 = c;
  while (n >= 8) {
    c64 = _mm_crc32_u64(c64, Load64(p));
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n-- > 0) c = _mm_crc32_u8(c, *p++);
  return c;
}

bool DetectSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

}  // namespace

bool HardwareAccelerated() {
#ifdef HUBLINK_CRC32C_X86
  static const bool has = DetectSse42();
  return has;
#else
  return false;
#endif
}

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t size) {
  return ~ExtendTable(~crc, static_cast<const uint8_t*>(data), size);
}

uint32_t Extend(uint32_t crc, const void* data, size_t size) {
#ifdef HUBLINK_CRC32C_X86
  if (HardwareAccelerated()) return ~ExtendSse42(~crc, static_cast<const uint8_t*>(data), size);
#endif
  return ExtendPortable(crc, data, size);
}

}  // namespace crc32c
}  // namespace mqtt
}  // namespace hublink

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI, ext4 and LevelDB use it. The
// SSE4.2 crc32 instruction when the CPU has it (checked once at run time), a slicing-by-8 table
// otherwise; both give the same value. Check value: Crc32c("123456789") == 0xE3069283.
#ifndef HUBLINK_PROTOCOLS_MQTT_FILE_STORE_CRC32C_H_
#define HUBLINK_PROTOCOLS_MQTT_FILE_STORE_CRC32C_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace hublink {
namespace mqtt {
namespace crc32c {

// The CRC of `data` continuing from `crc` (the CRC of the bytes before it; 0 to start), so
// Extend(Extend(0, a), b) == Value(a + b).
uint32_t Extend(uint32_t crc, const void* data, size_t size);
inline uint32_t Value(absl::string_view data) { return Extend(0, data.data(), data.size()); }

// The table-only path, whatever the CPU: for tests comparing both.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t size);
// True when Extend uses the SSE4.2 instruction.
bool HardwareAccelerated();

}  // namespace crc32c
}  // namespace mqtt
}  // namespace hublink

#endif  // HUBLINK_PROTOCOLS_MQTT_FILE_STORE_CRC32C_H_

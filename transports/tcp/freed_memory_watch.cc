#include "transports/tcp/freed_memory_watch.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define HUBLINK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HUBLINK_SANITIZED 1
#endif

namespace hublink {
namespace testing {
namespace {

constexpr size_t kMaxSecret = 64;
char g_secret[kMaxSecret];
size_t g_secret_size = 0;
std::atomic<bool> g_active{false};
std::atomic<int> g_hits{0};

bool Matches(const unsigned char* p, const char* secret, size_t size) {
  for (size_t j = 0; j + 4 < size; ++j) {
    if ((p[j] ^ p[j + 4]) !=
        (static_cast<unsigned char>(secret[j]) ^ static_cast<unsigned char>(secret[j + 4]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool HoldsSecret(const char* data, size_t size, absl::string_view secret) {
  if (secret.size() < 8 || size < secret.size()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  for (size_t i = 0; i + secret.size() <= size; ++i) {
    if (Matches(p + i, secret.data(), secret.size())) return true;
  }
  return false;
}

bool FreedMemoryWatchAvailable() {
#ifdef HUBLINK_SANITIZED
  return false;
#else
  return true;
#endif
}

void StartFreedMemoryWatch(absl::string_view secret) {
  g_active.store(false);
  g_secret_size = std::min(secret.size(), kMaxSecret);
  std::memcpy(g_secret, secret.data(), g_secret_size);
  g_hits.store(0);
  g_active.store(true);
}

int StopFreedMemoryWatch() {
  g_active.store(false);
  return g_hits.load();
}

namespace {

void ScanAndFree(void* ptr) noexcept {
  if (ptr == nullptr) return;
  if (g_active.load(std::memory_order_acquire)) {
    size_t size = malloc_usable_size(ptr);
    // Big blocks are scanned too: write queues hold megabytes.
    if (HoldsSecret(static_cast<const char*>(ptr), size,
                    absl::string_view(g_secret, g_secret_size))) {
      g_hits.fetch_add(1);
    }
  }
  std::free(ptr);
}

void* Allocate(size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace
}  // namespace testing
}  // namespace hublink

#ifndef HUBLINK_SANITIZED
void* operator new(size_t size) { return hublink::testing::Allocate(size); }
void* operator new[](size_t size) { return hublink::testing::Allocate(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { hublink::testing::ScanAndFree(p); }
void operator delete[](void* p) noexcept { hublink::testing::ScanAndFree(p); }
void operator delete(void* p, size_t) noexcept { hublink::testing::ScanAndFree(p); }
void operator delete[](void* p, size_t) noexcept { hublink::testing::ScanAndFree(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { hublink::testing::ScanAndFree(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  hublink::testing::ScanAndFree(p);
}
#endif

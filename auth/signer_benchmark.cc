// Cost of one Sign() (fresh connid + signature) per scheme: what every (re)connect pays.
//   bazel run -c opt //auth:signer_benchmark
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "auth/hmac/hmac.pb.h"
#include "auth/hmac/hmac_signer.h"
#include "auth/rsa/rsa.pb.h"
#include "auth/rsa/rsa_signer.h"
#include "auth/signer_test_support.h"
#include "benchmark/benchmark.h"
#include "plugins/log.h"

namespace hublink {
namespace {

void SetIdentity(auth::TencentIdentity* identity) {
  identity->set_product_id("ABCDEFGHIJ");
  identity->set_device_name("dev01");
  identity->mutable_ttl()->set_seconds(600);
}

void RunSign(benchmark::State& state, Signer& signer) {
  SignRequest request;
  request.now = absl::Now();
  for (auto _ : state) {
    absl::StatusOr<Credentials> credentials = signer.Sign(request);
    if (!credentials.ok()) state.SkipWithError("sign failed");
    benchmark::DoNotOptimize(credentials);
  }
}

void BM_HmacSign(benchmark::State& state, const char* algorithm) {
  SetMinLogLevel(LogLevel::kWarning);  // Configure()'s line would interleave with the table
  auth::HmacSignerConfig config;
  SetIdentity(config.mutable_identity());
  config.set_algorithm(algorithm);
  config.set_device_secret("MDEyMzQ1Njc4OWFiY2RlZg==");
  absl::StatusOr<std::unique_ptr<Signer>> signer =
      auth::testing::ConfigureSigner(RegisterHmacSigner, "hmac", config);
  if (!signer.ok()) return state.SkipWithError("configure failed");
  RunSign(state, **signer);
}
BENCHMARK_CAPTURE(BM_HmacSign, sha1, "hmacsha1");
BENCHMARK_CAPTURE(BM_HmacSign, sha256, "hmacsha256");

void BM_RsaSign(benchmark::State& state) {
  SetMinLogLevel(LogLevel::kWarning);
  const int bits = static_cast<int>(state.range(0));
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  BN_set_word(e.get(), RSA_F4);
  RSA_generate_key_ex(rsa.get(), bits, e.get(), nullptr);
  char path[] = "/tmp/hublink_bench_key_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return state.SkipWithError("mkstemp failed");
  FILE* file = fdopen(fd, "w");
  PEM_write_RSAPrivateKey(file, rsa.get(), nullptr, nullptr, 0, nullptr, nullptr);
  fclose(file);
  auth::RsaSignerConfig config;
  SetIdentity(config.mutable_identity());
  config.set_private_key_file(path);
  absl::StatusOr<std::unique_ptr<Signer>> signer =
      auth::testing::ConfigureSigner(RegisterRsaSigner, "rsa", config);
  unlink(path);
  if (!signer.ok()) return state.SkipWithError("configure failed");
  RunSign(state, **signer);
}
BENCHMARK(BM_RsaSign)->Arg(2048)->Arg(3072);

}  // namespace
}  // namespace hublink

BENCHMARK_MAIN();

// CIFAR binary batches: the first byte picks the variant (mod 3), the rest is the file.
#include "datasets/cifar.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr lethe::CifarVariant kVariants[] = {lethe::CifarVariant::Cifar10, lethe::CifarVariant::Cifar100Fine,
                                                      lethe::CifarVariant::Cifar100Coarse};
  const lethe::CifarVariant variant = kVariants[data[0] % 3];
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  return lethe::fuzz::guarded([&] {
    const lethe::Dataset d = lethe::parse_cifar("batch.bin", bytes, variant);
    lethe::fuzz::check_dataset(d, "parse_cifar");
    if (d.num_classes != lethe::cifar_num_classes(variant)) lethe::fuzz::fail("parse_cifar: wrong class count");
    if (d.size() * lethe::cifar_record_bytes(variant) != static_cast<int64_t>(bytes.size()))
      lethe::fuzz::fail("parse_cifar: record count does not match the input length");
    if (d.channels() != 3 || d.height() != 32 || d.width() != 32)
      lethe::fuzz::fail("parse_cifar: images are " + lethe::shape_str(d.images.shape()));
  });
}

#pragma once
// CIFAR-10 and CIFAR-100 "binary version", read as distributed.
//   CIFAR-10:  data_batch_1..5.bin, test_batch.bin; each record is 1 label byte + 3072 pixel bytes.
//   CIFAR-100: train.bin, test.bin; each record is a coarse label byte, a fine label byte + 3072 pixel bytes.
// Pixels are channel-planar (1024 R, then 1024 G, then 1024 B), rows top to bottom, so a record maps straight onto
// [3, 32, 32]. Record counts are checked against the file length and labels against the class count before any
// image tensor is allocated.
#include <string>
#include <vector>

#include "engine/data.h"

namespace lethe {

enum class CifarVariant { Cifar10, Cifar100Fine, Cifar100Coarse };

int64_t cifar_num_classes(CifarVariant v);  // 10, 100, 20
int64_t cifar_record_bytes(CifarVariant v);  // 3073 or 3074

// Decodes the bytes of one file (`path` only names it in errors). The fuzz entry point. Throws InputError naming
// the file, the byte offset where possible, and what was expected.
Dataset parse_cifar(const std::string& path, const std::string& bytes, CifarVariant v);
// Reads the files and concatenates their records in the order given.
Dataset load_cifar(const std::vector<std::string>& files, CifarVariant v);

}  // namespace lethe

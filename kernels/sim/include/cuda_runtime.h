#pragma once
// Stand-in for the CUDA runtime header in the simulated host build (kernels/sim/include comes first on the include
// path there). Everything is in the simulator's header.
#include "kernels/sim/sim.h"

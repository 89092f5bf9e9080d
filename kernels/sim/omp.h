#pragma once
// LETHE_SIM_OMP(directive): an OpenMP pragma for the library stand-ins' host loops when the build enables OpenMP
// (the simulator library links it through the engine), nothing otherwise.
#ifdef _OPENMP
#define LETHE_SIM_OMP(directive) _Pragma(#directive)
#else
#define LETHE_SIM_OMP(directive)
#endif

/* Compile the kernel body named by FNN_BODY for float and double and, on x86-64, for the
 * baseline, AVX2+FMA and AVX-512 instruction sets (GCC/Clang target pragmas: the whole file is
 * compiled with the portable flags, only these copies use the wider instructions).
 *
 * Usage, in a kernel family's .c file:
 *     #define FNN_BODY "relu_body.h"
 *     #include "fnn_multiversion.h"
 * The body uses REAL (element type), ACC (accumulator type: double) and FNAME(name). */
#include "fnn_common.h"
#include "fnn_math.h"

#define ACC double

#define FNN_ISA base
#define REAL float
#define FNN_T f32
#define FNN_IS_F32 1
#include FNN_BODY
#undef REAL
#undef FNN_T
#undef FNN_IS_F32
#define REAL double
#define FNN_T f64
#define FNN_IS_F32 0
#include FNN_BODY
#undef REAL
#undef FNN_T
#undef FNN_IS_F32
#undef FNN_ISA

#if FNN_X86_MULTIVERSION
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FNN_ISA avx2
#define REAL float
#define FNN_T f32
#define FNN_IS_F32 1
#include FNN_BODY
#undef REAL
#undef FNN_T
#undef FNN_IS_F32
#define REAL double
#define FNN_T f64
#define FNN_IS_F32 0
#include FNN_BODY
#undef REAL
#undef FNN_T
#undef FNN_IS_F32
#undef FNN_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")
#define FNN_ISA avx512
#define REAL float
#define FNN_T f32
#define FNN_IS_F32 1
#include FNN_BODY
#undef REAL
#undef FNN_T
#undef FNN_IS_F32
#define REAL double
#define FNN_T f64
#define FNN_IS_F32 0
#include FNN_BODY
#undef REAL
#undef FNN_T
#undef FNN_IS_F32
#undef FNN_ISA
#pragma GCC pop_options
#endif

/* Vectorisable exp for float and double.
 *
 * glibc only offers SIMD variants of exp under -ffast-math, which we do not use (it would change
 * NaN/Inf semantics everywhere), so loops that call expf() stay scalar. These branch-free
 * versions let GCC vectorise such loops at every instruction-set level.
 *
 * Method (Cephes): n = round(x/ln2), r = x - n*ln2 in two parts, exp(r) by a minimax polynomial
 * (float) or a Pade approximant (double), then multiply by 2^n built in the exponent bits.
 * Rounding uses the 1.5*2^p "shifter" trick, which leaves n in the low mantissa bits.
 * Accuracy: about 1 ulp. Results below ~2e-38 (float) / ~2e-308 (double) flush to 0, results
 * above the largest finite value are +inf, NaN propagates. */
#ifndef FNN_MATH_H
#define FNN_MATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>

static inline float fnn_expf(float x)
{
    const float lo = -86.6f, hi = 88.7228f;      /* 2^(n-1) must stay normal; log(FLT_MAX) */
    float xc = x < lo ? lo : (x > hi ? hi : x);  /* NaN passes through both tests */
    const float shifter = 12582912.0f;                    /* 1.5 * 2^23 */
    float tn = xc * 1.44269504088896341f + shifter;
    float n = tn - shifter;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &tn, sizeof bits);
    int32_t sbits = (int32_t)((uint32_t)(bits + 126) << 23);  /* 2^(n-1): n may reach 128 */
    float scale;
    memcpy(&scale, &sbits, sizeof scale);
    float y = (p * scale) * 2.0f;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return y;
}

static inline double fnn_exp(double x)
{
    const double lo = -707.7, hi = 709.782712893384;   /* 2^(n-1) must stay normal; log(DBL_MAX) */
    double xc = x < lo ? lo : (x > hi ? hi : x);
    const double shifter = 6755399441055744.0;            /* 1.5 * 2^52 */
    double tn = xc * 1.4426950408889634074 + shifter;
    double n = tn - shifter;
    double r = xc - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    double rr = r * r;
    double px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr +
                     9.99999999999999999910e-1);
    double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
    double e = 1.0 + 2.0 * (px / (qx - px));
    int64_t bits;
    memcpy(&bits, &tn, sizeof bits);
    int64_t sbits = (int64_t)((uint64_t)(bits + 1022) << 52);     /* 2^(n-1) */
    double scale;
    memcpy(&scale, &sbits, sizeof scale);
    double y = (e * scale) * 2.0;
    y = x < lo ? 0.0 : y;
    y = x > hi ? INFINITY : y;
    return y;
}

#define FNN_EXP(x) _Generic((x), float: fnn_expf, double: fnn_exp)(x)

#endif /* FNN_MATH_H */

/*
 * chip.h: chips, seeded draws of every device instance of a network, and the
 * counter-based generator behind them and behind cycle-to-cycle noise.
 *
 * A chip is one draw of the parameters of every instance: instance (layer,
 * device) of chip S gets parameter i from a hash of (S, layer, device, i), so
 * chip 7 is the same chip in every job, on every machine and whatever the
 * number of threads, and no generator state is shared between threads.
 *
 * Trade-off: a counter-based generator (splitmix64's finaliser chained over
 * the key) rather than a stream generator such as GSL's: a draw costs a few
 * multiplications, any draw can be made without the ones before it, and the
 * draws of two chips, two instances or two parameters are independent as far
 * as tests/engine/test_chip.c can tell (correlations and moments of 10^5
 * draws). It is not a cryptographic generator.
 */
#ifndef QN_CHIP_H
#define QN_CHIP_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

/* What a draw is for; part of every key, so parameters and noise never share draws. */
enum chip_tag { CHIP_TAG_PARAM = 1, CHIP_TAG_NOISE_OUTPUT = 2, CHIP_TAG_NOISE_DRIVE = 3 };

/* A 64-bit hash of the key (tag, s, a, b, c). */
uint64_t chip_hash(enum chip_tag tag, uint64_t s, uint64_t a, uint64_t b, uint64_t c);

/* A uniform draw in (0, 1) (never 0 or 1) keyed by (tag, s, a, b, c). */
double chip_uniform(enum chip_tag tag, uint64_t s, uint64_t a, uint64_t b, uint64_t c);

/* A standard normal draw keyed by (tag, s, a, b, c) (Box-Muller of the uniforms
 * of keys (.., 2c) and (.., 2c + 1)). */
double chip_normal(enum chip_tag tag, uint64_t s, uint64_t a, uint64_t b, uint64_t c);

/*
 * The value of a parameter of nominal value `nominal` spread as *sp, from a
 * standard normal z and a uniform u in (0, 1): normal nominal + cv |nominal| z;
 * lognormal nominal exp(sigma z) with sigma = sqrt(log(1 + cv^2)) (median
 * nominal, coefficient of variation cv); uniform nominal + cv |nominal|
 * sqrt(3) (2u - 1); none: nominal.
 */
double chip_spread(const struct dev_spread *sp, double nominal, double z, double u);

/*
 * The parameters of instance (layer, device) of chip `seed` into
 * theta[d->n_params], in the order of d->params: the nominal value for a
 * parameter without variability, else its draw (parameter i from the key
 * (CHIP_TAG_PARAM, seed, layer, device, i)).
 */
void chip_draw(const struct dev_model *d, uint64_t seed, size_t layer, size_t device,
               double *theta);

#endif

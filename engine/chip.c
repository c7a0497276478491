/*
 * chip.c: the counter-based generator and the parameter draws of chip.h.
 */
#include "chip.h"

#include <math.h>

#define CHIP__GOLDEN 0x9e3779b97f4a7c15ull

/* splitmix64's finaliser: a bijection of 64-bit words that mixes every bit. */
static uint64_t chip__mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t chip_hash(enum chip_tag tag, uint64_t s, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = chip__mix((uint64_t)tag * CHIP__GOLDEN);
    h = chip__mix(h + s + CHIP__GOLDEN);
    h = chip__mix(h + a + CHIP__GOLDEN);
    h = chip__mix(h + b + CHIP__GOLDEN);
    return chip__mix(h + c + CHIP__GOLDEN);
}

double chip_uniform(enum chip_tag tag, uint64_t s, uint64_t a, uint64_t b, uint64_t c)
{
    /* the top 53 bits, centred in their interval: (0.5 .. 2^53 - 0.5) / 2^53 */
    return ((double)(chip_hash(tag, s, a, b, c) >> 11) + 0.5) * 0x1.0p-53;
}

double chip_normal(enum chip_tag tag, uint64_t s, uint64_t a, uint64_t b, uint64_t c)
{
    double u1 = chip_uniform(tag, s, a, b, 2 * c), u2 = chip_uniform(tag, s, a, b, 2 * c + 1);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double chip_spread(const struct dev_spread *sp, double nominal, double z, double u)
{
    double scale = sp->cv * fabs(nominal);
    switch (sp->dist) {
    case DEV_DIST_NONE: return nominal;
    case DEV_DIST_NORMAL: return nominal + scale * z;
    case DEV_DIST_LOGNORMAL: return nominal * exp(sqrt(log1p(sp->cv * sp->cv)) * z);
    case DEV_DIST_UNIFORM: return nominal + scale * sqrt(3.0) * (2.0 * u - 1.0);
    }
    return nominal;
}

void chip_draw(const struct dev_model *d, uint64_t seed, size_t layer, size_t device,
               double *theta)
{
    for (size_t i = 0; i < d->n_params; i++) {
        const struct dev_spread *sp = &d->vary[i];
        if (sp->dist == DEV_DIST_NONE) {
            theta[i] = d->params[i];
            continue;
        }
        double z = 0, u = 0.5;
        if (sp->dist == DEV_DIST_UNIFORM)
            u = chip_uniform(CHIP_TAG_PARAM, seed, layer, device, i);
        else
            z = chip_normal(CHIP_TAG_PARAM, seed, layer, device, i);
        theta[i] = chip_spread(sp, d->params[i], z, u);
    }
}

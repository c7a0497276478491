/* shard.c: which rows a rank computes, and the sums across ranks (see shard.h). */
#include "shard.h"

#include "qn_err.h"

int shard_active(const struct shard *s)
{
    return s && s->ranks > 1;
}

void shard_rows(const struct shard *s, size_t B, size_t *off, size_t *len)
{
    if (!shard_active(s)) {
        *off = 0, *len = B;
        return;
    }
    size_t lo = B * s->rank / s->ranks, hi = B * (s->rank + 1) / s->ranks;
    *off = lo, *len = hi - lo;
}

int shard_sum(const struct shard *s, float *buf, size_t n)
{
    if (!shard_active(s))
        return QN_OK;
    return s->sum ? s->sum(buf, n, s->ctx) : QN_EINVAL;
}

int shard_sum64(const struct shard *s, double *buf, size_t n)
{
    if (!shard_active(s))
        return QN_OK;
    return s->sum64 ? s->sum64(buf, n, s->ctx) : QN_EINVAL;
}

int shard_check(const struct shard *s)
{
    if (!s)
        return QN_OK;
    if (s->ranks < 1 || s->rank >= s->ranks)
        return QN_EINVAL;
    return s->ranks == 1 || (s->sum && s->sum64) ? QN_OK : QN_EINVAL;
}

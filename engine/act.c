/* act.c: scalar activations, numerically stable for large |z|. */
#include "act.h"

#include <math.h>
#include <string.h>

#include "qn_err.h"

static const char *const act__names[] = {"identity", "relu", "sigmoid", "tanh", "softplus"};

double act_eval(enum act_kind k, double z)
{
    switch (k) {
    case ACT_IDENTITY: return z;
    case ACT_RELU: return z > 0 ? z : 0;
    case ACT_SIGMOID: return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
    case ACT_TANH: return tanh(z);
    case ACT_SOFTPLUS: return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    }
    return z;
}

double act_deriv(enum act_kind k, double z)
{
    switch (k) {
    case ACT_IDENTITY: return 1;
    case ACT_RELU: return z > 0 ? 1 : 0;
    case ACT_SIGMOID: {
        double s = act_eval(ACT_SIGMOID, z);
        return s * (1 - s);
    }
    case ACT_TANH: {
        double t = tanh(z);
        return 1 - t * t;
    }
    case ACT_SOFTPLUS: return act_eval(ACT_SIGMOID, z);
    }
    return 1;
}

const char *act_name(enum act_kind k)
{
    return act__names[k];
}

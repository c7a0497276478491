/*
 * act.h: the scalar activation functions shared by ideal neurons (device.c)
 * and dense layers (nn.c): identity, relu, sigmoid, tanh, softplus.
 */
#ifndef QN_ACT_H
#define QN_ACT_H

enum act_kind { ACT_IDENTITY, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTPLUS };

/* f(z) for activation k. */
double act_eval(enum act_kind k, double z);

/* f'(z) for activation k (relu: 0 at z <= 0, 1 above). */
double act_deriv(enum act_kind k, double z);

/* The name of activation k. */
const char *act_name(enum act_kind k);

#endif

/*
 * qt_engine.h: helpers shared by the engine tests (compiled into every test
 * and bench program, as every tests/support .c file): preparing a device
 * model or failing the test, a neuron device, a small random surrogate MLP and an independent
 * float64 forward of it, and a snapshot of a network's parameters with its
 * optimizer's state (what a checkpoint holds) to resume a run from.
 *
 * The failing helpers fail the running cmocka test; nothing here is owned
 * by the caller except a snapshot's buffers (qt_snap_free).
 */
#ifndef QT_ENGINE_H
#define QT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "act.h"

struct dev_model;
struct surrogate;
struct net;
struct optim;

/* dev_model_prepare, failing the test with the error's field and message. */
void qt_dev_prepare(struct dev_model *d);

/* d as a neuron device with activation act, prepared (as qt_dev_prepare);
 * dev_model_close it. */
void qt_neuron(struct dev_model *d, enum act_kind act);
/* d as the built-in crn_relu device with its defaults, prepared; dev_model_close it. */
void qt_crn(struct dev_model *d);

/* A small random surrogate MLP (n_in -> 6 tanh -> 1, parameters from seed)
 * with input scaling mean 0.1 (k + 1), std 1.5 + k for input k, and output
 * scaling mean 0.3, std 2; s is overwritten (surrogate_close frees it). */
void qt_make_surrogate(struct surrogate *s, size_t n_in, uint64_t seed);

/* Float64 forward of the surrogate on drives u[s->n_in], written from the
 * MLP's weights (not the engine's forward). */
double qt_ref_surrogate(const struct surrogate *s, const double *u);

/* A network's parameters and its optimizer's state and step count. */
struct qt_snap {
    float *params, *state; /* owned (qt_snap_free) */
    size_t n_params, n_state;
    uint64_t t;
};

/* Copies n's parameters and o's state into s (new buffers). */
void qt_snap_take(struct qt_snap *s, const struct net *n, const struct optim *o);

/* Copies s back into n (of s->n_params parameters) and o. */
void qt_snap_restore(const struct qt_snap *s, struct net *n, struct optim *o);

/* Frees the buffers (s itself is the caller's). */
void qt_snap_free(struct qt_snap *s);

#endif

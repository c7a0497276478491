/*
 * fuzz_spec.c: job and device specs, as a submission reaches them.
 *
 * The input is JSON text. spec_load parses it; an object with a "type" is a
 * job envelope (job_spec_parse: a type of the job table), whose "spec" goes
 * to the parser of its type, and a sweep's inline device is parsed (spec_device_parse, which compiles
 * its expressions and reactions) and bound to the ranges (spec_sweep_bind),
 * as the sweep runner does. Any other object is tried as a bare device (the
 * body of POST /v1/devices) and as the spec of each job type, so mutations of
 * either shape reach every parser.
 */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "job.h"
#include "spec.h"

/* An inline device reference at path: parse, prepare, close. */
static void fuzz_spec__device(const struct spec_ref *ref, const char *path,
                              struct sweep_spec *sw)
{
    if (ref->kind != REF_INLINE || !ref->inline_obj)
        return;
    struct dev_model m;
    struct spec_error e;
    if (spec_device_parse(ref->inline_obj, path, &m, &e) != 0)
        return;
    if (sw)
        (void)spec_sweep_bind(sw, &m, &e);
    dev_model_close(&m);
}

static void fuzz_spec__sweep(const json_t *spec)
{
    struct sweep_spec sw;
    struct spec_error e;
    if (spec_sweep_parse(spec, &sw, &e) == 0) {
        fuzz_spec__device(&sw.device, "/spec/device", &sw);
        spec_sweep_close(&sw);
    }
}

static void fuzz_spec__fit(const json_t *spec)
{
    struct fit_spec f;
    struct spec_error e;
    if (spec_fit_parse(spec, &f, &e) == 0)
        spec_fit_close(&f);
}

static void fuzz_spec__train(const json_t *spec)
{
    static struct train_spec t; /* about 10 KB: not on the stack */
    struct spec_error e;
    if (spec_train_parse(spec, &t, &e) == 0)
        spec_train_close(&t);
}

static void fuzz_spec__evaluate(const json_t *spec)
{
    static struct evaluate_spec ev;
    struct spec_error e;
    if (spec_evaluate_parse(spec, &ev, &e) == 0)
        spec_evaluate_close(&ev);
}

/* The "spec" of a job of the given type. */
static void fuzz_spec__typed(const char *type, const json_t *spec)
{
    if (strcmp(type, "sweep") == 0)
        fuzz_spec__sweep(spec);
    else if (strcmp(type, "fit") == 0)
        fuzz_spec__fit(spec);
    else if (strcmp(type, "train") == 0)
        fuzz_spec__train(spec);
    else if (strcmp(type, "evaluate") == 0)
        fuzz_spec__evaluate(spec);
}

int fuzz_spec_one(const uint8_t *data, size_t size)
{
    json_t *root = NULL;
    struct spec_error e;
    if (spec_load((const char *)data, size, &root, &e) != 0)
        return 0;
    if (json_is_object(root) && json_object_get(root, "type")) {
        struct job_spec js;
        if (job_spec_parse(root, &js, &e) == 0) {
            fuzz_spec__typed(js.type, js.spec);
            json_decref(js.spec);
        }
    } else {
        struct spec_ref ref = {.kind = REF_INLINE, .inline_obj = root};
        fuzz_spec__device(&ref, "", NULL);
        fuzz_spec__sweep(root);
        fuzz_spec__fit(root);
        fuzz_spec__train(root);
        fuzz_spec__evaluate(root);
    }
    json_decref(root);
    return 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_spec_one(data, size);
}
#endif

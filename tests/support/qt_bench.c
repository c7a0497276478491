/* qt_bench.c: benchmark helpers (see qt_bench.h). */
#include "qt_bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "device.h"
#include "device_internal.h" /* dev_hermite_cross: the readout's spike location */

void qb_cpu_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(buf, cap, "%s", strchr(line, ':') + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    if (f)
        fclose(f);
}

/* x / (1 - exp(-x/c)), continuous through x = 0. */
static double qb_vtrap(double x, double c)
{
    double s = x / c;
    if (fabs(s) < 1e-6)
        return c * (1 + s / 2 + s * s / 12);
    return x / (1 - exp(-s));
}

void qb_hh_rates(double V, double r[6])
{
    r[0] = 0.1 * qb_vtrap(V + 40, 10);
    r[1] = 4 * exp(-(V + 65) / 18);
    r[2] = 0.07 * exp(-(V + 65) / 20);
    r[3] = 1 / (1 + exp(-(V + 35) / 10));
    r[4] = 0.01 * qb_vtrap(V + 55, 10);
    r[5] = 0.125 * exp(-(V + 65) / 80);
}

int qb_hh_rhs(double t, const double y[], double f[], void *params)
{
    (void)t;
    double I = *(const double *)params, V = y[0], m = y[1], h = y[2], n = y[3], r[6];
    qb_hh_rates(V, r);
    double ina = 120.0 * m * m * m * h * (V - 50.0);
    double ik = 36.0 * n * n * n * n * (V + 77.0);
    double il = 0.3 * (V + 54.4);
    f[0] = (I - ina - ik - il) / 1.0;
    f[1] = r[0] * (1 - m) - r[1] * m;
    f[2] = r[2] * (1 - h) - r[3] * h;
    f[3] = r[4] * (1 - n) - r[5] * n;
    return GSL_SUCCESS;
}

void qb_hh_direct(const struct dev_model *d, const double y0[4], double gain, const double *u,
                  size_t n, double *rate, size_t *count)
{
    double I = 0;
    gsl_odeiv2_system sys = {qb_hh_rhs, NULL, 4, &I};
    gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(
        &sys, gsl_odeiv2_step_rk8pd, d->solver.h0, d->solver.atol, d->solver.rtol);
    double t_max = d->readout.t_max, transient = dev_transient(&d->readout);
    for (size_t i = 0; i < n; i++) {
        I = gain * u[i];
        gsl_odeiv2_driver_reset(drv);
        double t = 0, h = d->solver.h0, y[4], yp[4], f0[4], f1[4], first = 0, last = 0;
        memcpy(y, y0, sizeof y);
        size_t late = 0;
        int rc = GSL_SUCCESS;
        while (t < t_max && rc == GSL_SUCCESS) {
            double tp = t;
            memcpy(yp, y, sizeof y);
            rc = gsl_odeiv2_evolve_apply(drv->e, drv->c, drv->s, &sys, &t, t_max, &h, y);
            if (!(yp[0] < 0 && y[0] >= 0 && t > transient))
                continue;
            qb_hh_rhs(tp, yp, f0, &I);
            qb_hh_rhs(t, y, f1, &I);
            double tc = y[0] > 0 ? dev_hermite_cross(tp, yp[0], f0[0], t, y[0], f1[0], 0.0) : t;
            if (tc >= transient && late++ == 0)
                first = tc;
            last = tc >= transient ? tc : last;
        }
        if (count)
            count[i] = late;
        rate[i] = rc != GSL_SUCCESS ? NAN
                  : late >= 2       ? 1000.0 * (double)(late - 1) / (last - first)
                                    : 0.0;
    }
    gsl_odeiv2_driver_free(drv);
}

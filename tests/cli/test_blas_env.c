/*
 * test_blas_env.c: server/cli/blas_env.c, and the claim it rests on: OpenBLAS's
 * Prescott and SkylakeX kernels give the same results.
 *
 * The kernel is fixed when OpenBLAS loads, so each kernel runs in a child:
 * this program executes itself ("--child CORE FILE") with OPENBLAS_CORETYPE
 * set to CORE (or unset for "-"), the child computes fixed sgemms and one
 * training step of a 784-128-10 relu network through nn.h, and writes the
 * core OpenBLAS reports, what blas_env_select said, and every float. The
 * parent compares the two kernels: different kernels sum in different
 * orders, so the check is normwise, max|a - b| / max|a| < 1e-5 per array,
 * not bitwise. Kernel tests are skipped on CPUs without AVX-512.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "act.h"
#include "blas_env.h"
#include "nn.h"
#include "qn_test.h"

#define TOL 1e-5
#define CHILD_MAX (1u << 20) /* floats a child may write */

/* What a child wrote. */
struct result {
    char core[48]; /* openblas_get_corename() */
    int state;     /* blas_env_select's return */
    uint32_t n;    /* floats */
    float *v;      /* (n) owned */
};

/* ---- child: the computations ---------------------------------------------------------------- */

/* Deterministic floats in [lo, hi): a 64-bit LCG, the same in every process. */
static void fill(float *a, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 6364136223846793005u + 1442695040888963407u;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        a[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

/* Appends C = op(A) op(B) for one shape and transposition to out; returns floats written. */
static size_t child_sgemm(float *out, int M, int K, int N, int ta, int tb, uint64_t seed)
{
    size_t na = (size_t)M * K, nb = (size_t)K * N;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return 0;
    }
    fill(a, na, seed, -1, 1);
    fill(b, nb, seed + 1, -1, 1);
    fill(out, (size_t)M * N, seed + 2, -1, 1); /* beta = 0.5 reads C */
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.5f, out, N);
    free(a), free(b);
    return (size_t)M * N;
}

/* Shapes (M, K, N): the brief's layer, then odd ones that hit the kernels' edge paths. */
static const int shapes[][3] = {{256, 784, 128}, {1, 1, 1},    {7, 13, 5},     {33, 65, 17},
                                {129, 257, 31},  {3, 1000, 2}, {128, 10, 128}, {17, 1, 300}};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* One step of a 784-128-10 relu network on 64 rows: logits, grads, logits after an SGD step. */
static size_t child_train(float *out)
{
    enum { TB = 64, TI = 784, TH = 128, TO = 10 };
    static float x[TB * TI], w1[TH * TI], b1[TH], w2[TO * TH], b2[TO], z1[TB * TH], h1[TB * TH],
        lg[TB * TO];
    static float dlg[TB * TO], dh1[TB * TH], dz1[TB * TH], dw1[TH * TI], db1[TH], dw2[TO * TH],
        db2[TO];
    int labels[TB];
    fill(x, TB * TI, 11, 0, 1);
    fill(w1, TH * TI, 12, -0.06f, 0.06f);
    fill(b1, TH, 13, -0.1f, 0.1f);
    fill(w2, TO * TH, 14, -0.2f, 0.2f);
    fill(b2, TO, 15, -0.1f, 0.1f);
    for (int b = 0; b < TB; b++)
        labels[b] = (b * 7) % TO;
    size_t k = 0;
    for (int step = 0; step < 2; step++) {
        nn_dense_forward(z1, x, w1, b1, TB, TI, TH);
        nn_act_forward(h1, z1, TB * TH, ACT_RELU);
        nn_dense_forward(lg, h1, w2, b2, TB, TH, TO);
        double loss;
        if (nn_xent_loss(&loss, dlg, lg, labels, TB, TO))
            return 0;
        memset(dh1, 0, sizeof dh1), memset(dz1, 0, sizeof dz1), memset(dw1, 0, sizeof dw1);
        memset(db1, 0, sizeof db1), memset(dw2, 0, sizeof dw2), memset(db2, 0, sizeof db2);
        nn_dense_backward(dh1, dw2, db2, dlg, h1, w2, TB, TH, TO);
        nn_act_backward(dz1, dh1, z1, h1, TB * TH, ACT_RELU);
        nn_dense_backward(NULL, dw1, db1, dz1, x, w1, TB, TI, TH);
        memcpy(out + k, lg, sizeof lg), k += TB * TO;
        memcpy(out + k, dw1, sizeof dw1), k += TH * TI;
        memcpy(out + k, dw2, sizeof dw2), k += TO * TH;
        out[k++] = (float)loss;
        for (size_t i = 0; i < TH * TI; i++)
            w1[i] -= 0.1f * dw1[i];
        for (size_t i = 0; i < TO * TH; i++)
            w2[i] -= 0.1f * dw2[i];
    }
    return k;
}

/* Child mode: blas_env_select as main() would call it, the computations, then the file. */
static int child_main(int argc, char **argv)
{
    struct result r = {{0}, 0, 0, NULL};
    r.state = blas_env_select(argc, argv); /* "--force": re-execute whatever it decides */
    if (strcmp(argv[1], "--force") == 0) {
        argv[1] = "--child";
        return blas_env_reexec(argv) == BLAS_ENV_EXEC_FAILED ? 3 : 4;
    }
    snprintf(r.core, sizeof r.core, "%s", blas_env_corename());
    float *v = malloc(CHILD_MAX * sizeof *v);
    if (!v)
        return 2;
    size_t k = 0;
    for (size_t s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 3; t++) /* nn.h's three products: NT, NN, TN */
            k += child_sgemm(v + k, shapes[s][0], shapes[s][1], shapes[s][2], t == 2, t == 0,
                             100 + 10 * s + (size_t)t);
    k += child_train(v + k);
    r.n = (uint32_t)k;
    FILE *f = fopen(argv[3], "wb");
    int ok = f && fwrite(&r, sizeof r, 1, f) == 1 && fwrite(v, sizeof *v, k, f) == k;
    ok = f && fclose(f) == 0 && ok;
    free(v);
    return ok ? 0 : 2;
}

/* ---- parent -----------------------------------------------------------------------------------
 */

/* Runs this program as "MODE CORE FILE" with OPENBLAS_CORETYPE=core ("-" unset) and
 * the QN_ variables unset; reads the child's file into *r. Returns the exit status. */
static int spawn(const char *mode, const char *core, const char *file, struct result *r)
{
    memset(r, 0, sizeof *r);
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(core, "-") == 0)
            unsetenv(BLAS_ENV_VAR_CORE);
        else
            setenv(BLAS_ENV_VAR_CORE, core, 1);
        unsetenv(BLAS_ENV_VAR_MARK);
        unsetenv(BLAS_ENV_VAR_OFF);
        char *args[] = {"test_blas_env", (char *)mode, (char *)core, (char *)file, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int st = -1;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    FILE *f = fopen(file, "rb");
    if (!f)
        return WEXITSTATUS(st) ? WEXITSTATUS(st) : -2;
    if (fread(r, sizeof *r, 1, f) == 1 && r->n <= CHILD_MAX) {
        r->v = malloc((r->n ? r->n : 1) * sizeof *r->v);
        if (r->v && fread(r->v, sizeof *r->v, r->n, f) != r->n)
            free(r->v), r->v = NULL;
    }
    fclose(f);
    remove(file);
    return r->v ? WEXITSTATUS(st) : -3;
}

/* Largest normwise relative difference over the arrays the children wrote, in their order. */
static double max_rel_diff(const struct result *a, const struct result *b, size_t *worst_at)
{
    double worst = 0;
    size_t lens[N_SHAPES * 3 + 8], n_lens = 0, off = 0;
    for (size_t s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 3; t++)
            lens[n_lens++] = (size_t)shapes[s][0] * (size_t)shapes[s][2];
    for (int step = 0; step < 2; step++) {
        lens[n_lens++] = 64 * 10, lens[n_lens++] = 128 * 784;
        lens[n_lens++] = 10 * 128, lens[n_lens++] = 1;
    }
    for (size_t j = 0; j < n_lens; j++) {
        double dmax = 0, amax = 0;
        for (size_t i = off; i < off + lens[j]; i++) {
            dmax = fmax(dmax, fabs((double)a->v[i] - b->v[i]));
            amax = fmax(amax, fabs((double)a->v[i]));
        }
        double rel = amax > 0 ? dmax / amax : dmax;
        if (rel > worst)
            worst = rel, *worst_at = j;
        off += lens[j];
    }
    assert_int_equal(off, a->n);
    return worst;
}

static void test_decision(void **state)
{
    (void)state;
    int st = -1;
    /* misdetected AVX-512 machine: re-execute */
    assert_int_equal(blas_env_should_reexec(NULL, NULL, NULL, 1, "Prescott", &st), 1);
    assert_int_equal(st, BLAS_ENV_DETECTED);
    assert_int_equal(blas_env_should_reexec(NULL, NULL, NULL, 1, "Haswell", NULL), 1);
    /* already AVX-512 kernels, in any case: keep */
    assert_int_equal(blas_env_should_reexec(NULL, NULL, NULL, 1, "SkylakeX", &st), 0);
    assert_int_equal(blas_env_should_reexec(NULL, NULL, NULL, 1, "COOPERLAKE", &st), 0);
    assert_int_equal(blas_env_should_reexec(NULL, NULL, NULL, 1, "sapphirerapids", &st), 0);
    /* no AVX-512: never */
    assert_int_equal(blas_env_should_reexec(NULL, NULL, NULL, 0, "Prescott", &st), 0);
    assert_int_equal(st, BLAS_ENV_DETECTED);
    /* the user's choice, the off switch, and the loop guard win */
    assert_int_equal(blas_env_should_reexec("Prescott", NULL, NULL, 1, "Prescott", &st), 0);
    assert_int_equal(st, BLAS_ENV_USER);
    assert_int_equal(blas_env_should_reexec(NULL, NULL, "1", 1, "Prescott", &st), 0);
    assert_int_equal(st, BLAS_ENV_OFF);
    assert_int_equal(blas_env_should_reexec(NULL, NULL, "", 1, "Prescott", &st), 0);
    assert_int_equal(st, BLAS_ENV_OFF);
    assert_int_equal(blas_env_should_reexec("SkylakeX", "1", NULL, 1, "SkylakeX", &st), 0);
    assert_int_equal(st, BLAS_ENV_SELECTED);
    assert_int_equal(blas_env_should_reexec(NULL, "1", NULL, 1, "Prescott", &st), 0);
    assert_int_equal(st, BLAS_ENV_DETECTED);
    assert_int_equal(blas_env_core_is_avx512(NULL), 0);
    assert_string_equal(blas_env_state_name(BLAS_ENV_SELECTED), "selected");
    assert_string_equal(blas_env_state_name(99), "unknown");
    assert_string_equal(blas_env_state_name(-1), "unknown");
}

/* In this (parent) process nothing is set, so blas_env_select must not fail; argc 0 is refused. */
static void test_select_degenerate(void **state)
{
    (void)state;
    char *none[] = {NULL};
    assert_int_equal(blas_env_select(0, none), BLAS_ENV_DETECTED);
    assert_int_equal(blas_env_select(1, NULL), BLAS_ENV_DETECTED);
    assert_non_null(blas_env_corename());
}

static void test_kernels_agree(void **state)
{
    (void)state;
    if (!blas_env_cpu_avx512())
        qt_skip("this CPU has no AVX-512, so there is no second OpenBLAS kernel to compare");
    char dir[256], fp[300], fs[300];
    assert_int_equal(qt_tmpdir(dir, sizeof dir), 0);
    snprintf(fp, sizeof fp, "%s/prescott", dir);
    snprintf(fs, sizeof fs, "%s/skylakex", dir);
    struct result p, s;
    assert_int_equal(spawn("--child", "Prescott", fp, &p), 0);
    assert_int_equal(spawn("--child", "SkylakeX", fs, &s), 0);
    assert_string_equal(p.core, "Prescott"); /* the two kernels really ran */
    assert_string_equal(s.core, "SkylakeX");
    assert_int_equal(p.state, BLAS_ENV_USER); /* the user's variable was respected */
    assert_int_equal(s.state, BLAS_ENV_USER);
    assert_int_equal(p.n, s.n);
    size_t at = 0, bitwise = memcmp(p.v, s.v, p.n * sizeof *p.v) == 0;
    double rel = max_rel_diff(&p, &s, &at);
    printf("Prescott vs SkylakeX: %u floats, max normwise relative difference %.3g (array %zu)%s\n",
           (unsigned)p.n, rel, at, bitwise ? ", bitwise equal" : "");
    assert_true(rel < TOL);
    free(p.v), free(s.v);
    qt_rmtree(dir);
}

/* With nothing set, blas_env_select leaves this machine on AVX-512 kernels (detected or
 * selected), and the forced re-execution path sets the variables and lands in SkylakeX. */
static void test_select_end_to_end(void **state)
{
    (void)state;
    if (!blas_env_cpu_avx512())
        qt_skip("this CPU has no AVX-512, so qn never selects AVX-512 kernels here");
    char dir[256], f1[300], f2[300];
    assert_int_equal(qt_tmpdir(dir, sizeof dir), 0);
    snprintf(f1, sizeof f1, "%s/auto", dir);
    snprintf(f2, sizeof f2, "%s/forced", dir);
    struct result a, b;
    assert_int_equal(spawn("--child", "-", f1, &a), 0);
    assert_true(blas_env_core_is_avx512(a.core));
    assert_true(a.state == BLAS_ENV_DETECTED || a.state == BLAS_ENV_SELECTED);
    assert_int_equal(spawn("--force", "-", f2, &b), 0);
    assert_string_equal(b.core, "SkylakeX");
    assert_int_equal(b.state, BLAS_ENV_SELECTED); /* and it did not execute itself again */
    printf("unset: core %s (%s); forced re-execution: core %s (%s)\n", a.core,
           blas_env_state_name(a.state), b.core, blas_env_state_name(b.state));
    free(a.v), free(b.v);
    qt_rmtree(dir);
}

int main(int argc, char **argv)
{
    if (argc == 4 && (strcmp(argv[1], "--child") == 0 || strcmp(argv[1], "--force") == 0))
        return child_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision),
        cmocka_unit_test(test_select_degenerate),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_select_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

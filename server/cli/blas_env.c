/*
 * blas_env.c: re-executing the program so OpenBLAS uses its AVX-512 kernels.
 *
 * Why: OpenBLAS built with DYNAMIC_ARCH (Debian's 0.3.21) chooses its kernel
 * set once, in a library constructor that runs before main(), from a table of
 * CPU model numbers. A CPU newer than the table (or a hypervisor's generic
 * model) gets "Prescott" kernels: sgemm at ~26 GFLOP/s per core instead of
 * the ~100-160 of "SkylakeX" on the same AVX-512 hardware, and training is
 * sgemm. The constructor reads OPENBLAS_CORETYPE, and nothing later can
 * change its choice, so setting the variable in main() is too late: we set
 * it and execv("/proc/self/exe", argv).
 *
 * Trade-off, and the rules that bound it:
 *   - Cost: the process starts twice (exec, dynamic linking, OpenBLAS's
 *     thread pool) - a few milliseconds, paid only on misdetected CPUs: when
 *     OpenBLAS already chose an AVX-512 core (SkylakeX, Cooperlake,
 *     SapphireRapids) nothing happens, so a correctly detected machine is
 *     never downgraded or slowed.
 *   - Only before threads: it must be the first call in main(); exec kills
 *     every thread, including OpenBLAS's pool, which is harmless then.
 *   - The user decides: an OPENBLAS_CORETYPE already in the environment is
 *     respected, and QN_NO_BLAS_REEXEC turns this off (debuggers, valgrind,
 *     which follow exec only when asked).
 *   - No loops: the re-executed process carries QN_BLAS_REEXEC=1 and never
 *     re-executes; child processes inherit OPENBLAS_CORETYPE and keep it.
 *   - Never fatal: no /proc, an exec refused by a sandbox, or a failed setenv
 *     leave the environment as it was and the program runs on the detected
 *     kernels. Results are the same either way up to summation order (the
 *     test compares both kernels to 1e-5).
 *   - Safety: SkylakeX kernels are chosen only when CPUID reports AVX-512F,
 *     BW, DQ and VL and the OS enables the ZMM and mask state (GCC's
 *     __builtin_cpu_supports checks XGETBV), so they can never hit SIGILL.
 */
#include "blas_env.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BLAS_ENV__SELF "/proc/self/exe"

static const char *const blas_env__state_names[] = {"detected", "user", "off", "selected",
                                                    "exec_failed"};

/* OpenBLAS core names whose sgemm kernels use AVX-512. */
static const char *const blas_env__avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};

const char *blas_env_state_name(int state)
{
    size_t n = sizeof blas_env__state_names / sizeof blas_env__state_names[0];
    if (state < 0 || (size_t)state >= n)
        return "unknown";
    return blas_env__state_names[state];
}

int blas_env_cpu_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int blas_env_core_is_avx512(const char *corename)
{
    if (!corename)
        return 0;
    size_t n = sizeof blas_env__avx512_cores / sizeof blas_env__avx512_cores[0];
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(corename, blas_env__avx512_cores[i]) == 0)
            return 1;
    return 0;
}

const char *blas_env_corename(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

int blas_env_should_reexec(const char *coretype, const char *mark, const char *off, int avx512,
                           const char *corename, int *state)
{
    int st = BLAS_ENV_DETECTED, go = 0;
    if (off)
        st = BLAS_ENV_OFF;
    else if (mark)
        st = coretype ? BLAS_ENV_SELECTED : BLAS_ENV_DETECTED;
    else if (coretype)
        st = BLAS_ENV_USER;
    else
        go = avx512 && !blas_env_core_is_avx512(corename);
    if (state)
        *state = st;
    return go;
}

int blas_env_select(int argc, char **argv)
{
    int state;
    if (argc < 1 || !argv || !argv[0])
        return BLAS_ENV_DETECTED;
    if (!blas_env_should_reexec(getenv(BLAS_ENV_VAR_CORE), getenv(BLAS_ENV_VAR_MARK),
                                getenv(BLAS_ENV_VAR_OFF), blas_env_cpu_avx512(),
                                blas_env_corename(), &state))
        return state;
    return blas_env_reexec(argv);
}

int blas_env_reexec(char **argv)
{
    if (setenv(BLAS_ENV_VAR_MARK, "1", 1) == 0 && setenv(BLAS_ENV_VAR_CORE, BLAS_ENV_CORE, 1) == 0)
        execv(BLAS_ENV__SELF, argv);
    /* Still here: undo, so children do not take our choice for the user's. */
    unsetenv(BLAS_ENV_VAR_CORE);
    unsetenv(BLAS_ENV_VAR_MARK);
    return BLAS_ENV_EXEC_FAILED;
}

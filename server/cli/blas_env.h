/*
 * blas_env.h: choosing OpenBLAS's AVX-512 kernels on CPUs it misdetects.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels in a library
 * constructor, before main(), from the CPU model number. On CPU models newer
 * than its table it falls back to "Prescott" (SSE3), which runs sgemm 3-5x
 * slower than its "SkylakeX" kernels on the same AVX-512 machine. The only
 * switch is the environment variable OPENBLAS_CORETYPE, read by that
 * constructor, so the program has to set it and execute itself again. See
 * blas_env.c for the trade-off.
 */
#ifndef QN_BLAS_ENV_H
#define QN_BLAS_ENV_H

#include <stddef.h>

/* What blas_env_select found or did (all non-negative: none is an error). */
enum blas_env_state {
    BLAS_ENV_DETECTED = 0, /* OpenBLAS's own choice kept: already AVX-512, or no AVX-512 CPU */
    BLAS_ENV_USER,         /* OPENBLAS_CORETYPE was set by the user: respected */
    BLAS_ENV_OFF,          /* QN_NO_BLAS_REEXEC is set: nothing done */
    BLAS_ENV_SELECTED,     /* this process was re-executed with OPENBLAS_CORETYPE=SkylakeX */
    BLAS_ENV_EXEC_FAILED   /* the re-execution failed: the detected kernel is used */
};

#define BLAS_ENV_CORE "SkylakeX" /* the core type chosen on AVX-512 CPUs */
#define BLAS_ENV_VAR_CORE "OPENBLAS_CORETYPE"
#define BLAS_ENV_VAR_MARK "QN_BLAS_REEXEC"   /* set to 1 in the re-executed process */
#define BLAS_ENV_VAR_OFF "QN_NO_BLAS_REEXEC" /* set (to anything) to disable all of this */

/*
 * Call first thing in main(), before any thread is started: when
 * OPENBLAS_CORETYPE, QN_BLAS_REEXEC and QN_NO_BLAS_REEXEC are all unset, the
 * CPU (and the OS) support AVX-512F/BW/DQ/VL and OpenBLAS chose a core
 * without AVX-512 kernels, sets OPENBLAS_CORETYPE=SkylakeX and
 * QN_BLAS_REEXEC=1 and executes /proc/self/exe with the same argv (argv is
 * borrowed, argv[argc] must be NULL as main's is). That call does not return
 * when it succeeds. Otherwise returns an enum blas_env_state; never fails:
 * on any problem the process goes on with the kernel OpenBLAS detected.
 */
int blas_env_select(int argc, char **argv);

/*
 * Sets OPENBLAS_CORETYPE=SkylakeX and QN_BLAS_REEXEC=1 and executes
 * /proc/self/exe with argv (borrowed, NULL-terminated), unconditionally:
 * blas_env_select's last step, public so a test can drive it. Returns only
 * when that fails, with both variables unset again: BLAS_ENV_EXEC_FAILED.
 */
int blas_env_reexec(char **argv);

/*
 * The decision alone, without side effects, for tests: the values of
 * OPENBLAS_CORETYPE, QN_BLAS_REEXEC and QN_NO_BLAS_REEXEC (NULL when unset),
 * whether the CPU can run AVX-512 code, and the core OpenBLAS chose.
 * Returns 1 when the process should re-execute itself, else 0 and the state
 * it is in (*state, may be NULL).
 */
int blas_env_should_reexec(const char *coretype, const char *mark, const char *off, int avx512,
                           const char *corename, int *state);

/* Nonzero when the CPU and the OS support AVX-512F, BW, DQ and VL. */
int blas_env_cpu_avx512(void);

/* Nonzero when OpenBLAS's core name (case-insensitive) has AVX-512 kernels. */
int blas_env_core_is_avx512(const char *corename);

/* The core OpenBLAS runs ("SkylakeX", "Prescott", ...): a static string, for logs. */
const char *blas_env_corename(void);

/* A short name of an enum blas_env_state ("detected", "user", ...); "unknown" otherwise. */
const char *blas_env_state_name(int state);

#endif
